//! Register-tiled kernels for the ops that carry the multiply-adds: convolution with one group,
//! depthwise convolution without a depth multiplier, the dense layer, and pooling.
//!
//! A convolution is computed directly from its input, without an im2col patch: for a block of
//! `P` output pixels, an indirection table holds where each pixel's input lies for every kernel
//! tap (or a row of zeros where the tap covers padding), and the weights are packed into tiles
//! of [`L`] output channels (once per plan when they are constants). The block's accumulators
//! stay in registers across the whole reduction; the bias is added and the fused activation
//! applied as they are stored.
//!
//! Each kernel is one generic function over a [`Tile`], compiled three times: for AVX-512 and for
//! AVX2 (both with fused multiply-add, chosen at run time) and portably (multiply then add). The
//! order of the additions is fixed by the code, not by the thread count or the batch; CPUs with
//! and without FMA round differently, within float rounding.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use tinyq_ir::op::Conv2D;
use tinyq_ir::FusedActivation;

use super::conv::{source, Geom};
use super::simd::{Plain, Tile, L};

/// The instruction sets the tiled kernels are compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    /// Plain Rust, multiply then add: every CPU.
    Portable,
    /// x86-64 with AVX2 and FMA.
    Avx2,
    /// x86-64 with AVX-512F and FMA.
    Avx512,
}

impl Isa {
    /// The best instruction set this CPU has.
    pub fn detected() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("fma") {
                if std::arch::is_x86_feature_detected!("avx512f") {
                    return Isa::Avx512;
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    return Isa::Avx2;
                }
            }
        }
        Isa::Portable
    }
}

thread_local! {
    /// A lower instruction set this thread's kernels are held to (see [`with_isa`]).
    static CAP: Cell<Option<Isa>> = const { Cell::new(None) };
}

/// Runs `f` with this thread's float kernels held to `isa` (or the detected one if lower), so
/// that tests and benchmarks can exercise the fallbacks on any CPU.
pub fn with_isa<R>(isa: Isa, f: impl FnOnce() -> R) -> R {
    /// Puts the previous cap back, also when `f` panics.
    struct Restore(Option<Isa>);
    impl Drop for Restore {
        fn drop(&mut self) {
            CAP.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(CAP.with(|c| c.replace(Some(isa))));
    f()
}

fn isa() -> Isa {
    let detected = Isa::detected();
    CAP.with(|c| c.get()).map_or(detected, |cap| cap.min(detected))
}

/// The pixel block of each instruction set: as many accumulator tiles as leave registers for the
/// operands (32 AVX-512 registers, 16 AVX2 ones holding half a tile each).
fn block() -> usize {
    match isa() {
        Isa::Avx512 => 12,
        Isa::Avx2 => 6,
        Isa::Portable => 2,
    }
}

/// Defines `$name(args)`, which runs `$generic::<T, P>(args)` with the [`Tile`] and pixel block
/// ([`block`]) of the best instruction set this CPU has.
macro_rules! multiversion {
    ($name:ident = $generic:ident ( $($arg:ident : $ty:ty),* )) => {
        fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                use super::simd::{Avx2, Avx512};
                #[target_feature(enable = "avx512f,fma")]
                fn avx512($($arg: $ty),*) {
                    $generic::<Avx512, 12>($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) {
                    $generic::<Avx2, 6>($($arg),*)
                }
                match isa() {
                    // SAFETY: the CPU has the features these functions enable (checked by `isa`).
                    Isa::Avx512 => unsafe { avx512($($arg),*) },
                    Isa::Avx2 => unsafe { avx2($($arg),*) },
                    Isa::Portable => $generic::<Plain, 2>($($arg),*),
                }
            }
            #[cfg(not(target_arch = "x86_64"))]
            {
                $generic::<Plain, 2>($($arg),*)
            }
        }
    };
}

multiversion!(run_gemm_rows = gemm_rows(rows: &Rows, packed: &[f32], bias: &[f32], act: FusedActivation, oc: usize, out: &mut [f32]));
multiversion!(run_depthwise = depthwise_rows(rows: &Rows, w: &[f32], bias: &[f32], act: FusedActivation, out: &mut [f32]));
multiversion!(run_pool = pool_rows(x: &[f32], w: &PoolWindow, max: bool, act: FusedActivation, out: &mut [f32]));
multiversion!(run_dense = dense(x: &[f32], w: &[f32], inner: usize, units: usize, bias: Option<&[f32]>, act: FusedActivation, out: &mut [f32]));

/// Stores the first `dst.len()` (at most [`L`]) lanes of `v` at `dst`, clamped to the fused
/// activation's range.
#[inline(always)]
fn store<T: Tile>(v: T, act: FusedActivation, dst: &mut [f32]) {
    let v = if act == FusedActivation::None {
        v
    } else {
        let (lo, hi) = act.range();
        v.clamp(T::splat(lo), T::splat(hi))
    };
    if dst.len() == L {
        // SAFETY: dst holds L values.
        unsafe { v.store(dst.as_mut_ptr()) }
    } else {
        dst.iter_mut().zip(v.to_array()).for_each(|(d, x)| *d = x);
    }
}

/// Marks a tap that lies in the padding in an indirection table: it reads a row of zeros.
const PAD: usize = usize::MAX;

/// Everything an indirection table depends on.
type TableKey = [usize; 14];

thread_local! {
    /// Each thread's recent indirection tables: a model runs the same few geometries again for
    /// every sample.
    static TABLES: RefCell<Vec<(TableKey, Table)>> = const { RefCell::new(Vec::new()) };
}

/// How many tables a thread keeps (more than the convolutions of a small model).
const TABLES_KEPT: usize = 64;

/// Where each output pixel reads its input, for blocks of `block` pixels: for each block and
/// each tap, `block` offsets of rows of `depth` values, or [`PAD`] where the tap lies in the
/// padding and for the pixels past the end of the last block.
#[derive(Clone)]
struct Table {
    ind: Rc<[usize]>,
    /// One past the last value any row reads (`offset + depth`, at most).
    end: usize,
}

impl Table {
    fn new(ind: Vec<usize>, depth: usize) -> Table {
        let end = ind.iter().filter(|&&o| o != PAD).map(|&o| o + depth).max().unwrap_or(0);
        Table { ind: ind.into(), end }
    }
}

/// The [`Table`] of a convolution's input pixels (rows of `ic` values of one image).
fn indirection(g: &Geom, p: &Conv2D, block: usize) -> Table {
    let key = [
        g.ih,
        g.iw,
        g.ic,
        g.oh,
        g.ow,
        g.kh,
        g.kw,
        p.stride[0],
        p.stride[1],
        p.dilation[0],
        p.dilation[1],
        g.pad_top,
        g.pad_left,
        block,
    ];
    TABLES.with(|t| {
        let mut tables = t.borrow_mut();
        if let Some((_, table)) = tables.iter().find(|(k, _)| *k == key) {
            return table.clone();
        }
        let (pixels, taps) = (g.oh * g.ow, g.kh * g.kw);
        let mut ind = vec![PAD; pixels.div_ceil(block) * taps * block];
        for q in 0..pixels {
            let (oy, ox) = (q / g.ow, q % g.ow);
            for t in 0..taps {
                if let Some((iy, ix)) = source(g, p, oy, ox, t / g.kw, t % g.kw) {
                    ind[((q / block) * taps + t) * block + q % block] = (iy * g.iw + ix) * g.ic;
                }
            }
        }
        let table = Table::new(ind, g.ic);
        if tables.len() == TABLES_KEPT {
            tables.remove(0);
        }
        tables.push((key, table.clone()));
        table
    })
}

/// A convolution's weights `[oc][k]` (OHWI flattened) as tiles `[oc / L][k][L]`, zero past
/// `oc`, and its bias padded to whole tiles.
pub struct Packed {
    w: Vec<f32>,
    bias: Vec<f32>,
}

impl Packed {
    pub fn new(w: &[f32], oc: usize, k: usize, bias: Option<&[f32]>) -> Packed {
        let tiles = oc.div_ceil(L);
        let mut packed = vec![0f32; tiles * k * L];
        for (tile, dst) in packed.chunks_exact_mut(k * L).enumerate() {
            for lane in 0..L.min(oc - tile * L) {
                let row = &w[(tile * L + lane) * k..][..k];
                dst.iter_mut().skip(lane).step_by(L).zip(row).for_each(|(d, &v)| *d = v);
            }
        }
        let mut b = vec![0f32; tiles * L];
        if let Some(bias) = bias {
            b[..oc].copy_from_slice(&bias[..oc]);
        }
        Packed { w: packed, bias: b }
    }
}

/// Conv2D with one group over NHWC, bias and fused activation included, from weights packed
/// once ([`Packed`]) or packed here.
pub fn conv2d(
    x: &[f32],
    g: &Geom,
    p: &Conv2D,
    w: &[f32],
    bias: Option<&[f32]>,
    packed: Option<&Packed>,
    out: &mut [f32],
) {
    let (taps, k) = (g.kh * g.kw, g.kh * g.kw * g.ic);
    let here;
    let packed = match packed {
        Some(packed) => packed,
        None => {
            here = Packed::new(w, g.oc, k, bias);
            &here
        }
    };
    let pixels = g.oh * g.ow;
    let table = indirection(g, p, block());
    let zeros = vec![0f32; g.ic];
    for n in 0..g.n {
        let image = &x[n * g.ih * g.iw * g.ic..(n + 1) * g.ih * g.iw * g.ic];
        let o = &mut out[n * pixels * g.oc..(n + 1) * pixels * g.oc];
        let rows = Rows { src: image, zeros: &zeros, table: &table, taps, depth: g.ic };
        run_gemm_rows(&rows, &packed.w, &packed.bias, p.activation, g.oc, o);
    }
}

/// Input rows of a tiled product: pixel `q`'s tap `t` reads `depth` values of `src` at its
/// offset in the table, or of `zeros` where the offset is [`PAD`].
struct Rows<'a> {
    src: &'a [f32],
    zeros: &'a [f32],
    table: &'a Table,
    taps: usize,
    depth: usize,
}

impl Rows<'_> {
    /// Checks what the kernels' unchecked reads rely on, for a pixel block of `block`; returns
    /// the table's offsets.
    fn check(&self, pixels: usize, block: usize) -> &[usize] {
        assert_eq!(self.table.ind.len(), pixels.div_ceil(block) * self.taps * block, "table for another block");
        assert!(self.zeros.len() >= self.depth, "zero row too short");
        assert!(self.table.end <= self.src.len(), "indirection outside the input");
        &self.table.ind
    }

    /// The start of the row at `off` (checked by [`Self::check`]).
    #[inline(always)]
    fn row(&self, off: usize) -> *const f32 {
        if off == PAD {
            self.zeros.as_ptr()
        } else {
            // SAFETY: `check` asserted off + depth <= table.end <= src.len().
            unsafe { self.src.as_ptr().add(off) }
        }
    }
}

/// `out[q][o] = act(bias[o] + Σ_t Σ_c src[ind(q, t) + c] · w[o][t·depth + c])` for every pixel `q`.
/// Where the instruction set has the registers ([`Tile::PAIRS`]), two tiles of output channels
/// share each input value loaded.
#[inline(always)]
fn gemm_rows<T: Tile, const P: usize>(
    rows: &Rows,
    packed: &[f32],
    bias: &[f32],
    act: FusedActivation,
    oc: usize,
    out: &mut [f32],
) {
    let (taps, depth) = (rows.taps, rows.depth);
    let k = taps * depth;
    let pixels = out.len() / oc.max(1);
    let table = rows.check(pixels, P);
    let tiles = oc.div_ceil(L);
    assert!(packed.len() == tiles * k * L && bias.len() == tiles * L);
    let pairs = if T::PAIRS { tiles / 2 } else { 0 };
    for (blk, ind) in table.chunks_exact(taps * P).enumerate() {
        let block = Block { rows, ind, q0: blk * P, count: P.min(pixels - blk * P), act, oc };
        for pair in 0..pairs {
            tiles_of::<T, P, 2>(&block, packed, bias, 2 * pair, &mut *out);
        }
        for tile in 2 * pairs..tiles {
            tiles_of::<T, P, 1>(&block, packed, bias, tile, &mut *out);
        }
    }
}

/// One block of output pixels of [`gemm_rows`].
struct Block<'a> {
    rows: &'a Rows<'a>,
    /// The block's part of the table: `P` offsets per tap.
    ind: &'a [usize],
    q0: usize,
    count: usize,
    act: FusedActivation,
    oc: usize,
}

/// Tiles `first..first + N` of output channels for one block of `P` pixels: `P × N` accumulators.
#[inline(always)]
fn tiles_of<T: Tile, const P: usize, const N: usize>(
    b: &Block,
    packed: &[f32],
    bias: &[f32],
    first: usize,
    out: &mut [f32],
) {
    let (taps, depth) = (b.rows.taps, b.rows.depth);
    let k = taps * depth;
    // SAFETY (loads): the bias and the packed weights hold whole tiles (asserted by the caller),
    // first + N <= tiles, and c < depth; the input rows hold `depth` values (`check`).
    let w: [*const f32; N] = std::array::from_fn(|n| packed[(first + n) * k * L..(first + n + 1) * k * L].as_ptr());
    let mut acc = [[T::splat(0.0); N]; P];
    for (t, offs) in b.ind.chunks_exact(P).enumerate() {
        let xs: [*const f32; P] = std::array::from_fn(|p| b.rows.row(offs[p]));
        for c in 0..depth {
            let wv: [T; N] = std::array::from_fn(|n| unsafe { T::load(w[n].add((t * depth + c) * L)) });
            for (a, x) in acc.iter_mut().zip(xs) {
                let xv = T::splat(unsafe { *x.add(c) });
                for (a, &wv) in a.iter_mut().zip(&wv) {
                    *a = T::mul_add(xv, wv, *a);
                }
            }
        }
    }
    for (n, tile) in (first..first + N).enumerate() {
        let lanes = L.min(b.oc - tile * L);
        let bias = unsafe { T::load(bias.as_ptr().add(tile * L)) };
        for (p, a) in acc.iter().enumerate().take(b.count) {
            store(T::add(a[n], bias), b.act, &mut out[(b.q0 + p) * b.oc + tile * L..][..lanes]);
        }
    }
}

/// DepthwiseConv2D with depth multiplier 1 and a multiple of [`L`] channels, bias and fused
/// activation included. Returns false (computing nothing) for other shapes.
pub fn depthwise_conv2d(x: &[f32], g: &Geom, p: &Conv2D, w: &[f32], bias: Option<&[f32]>, out: &mut [f32]) -> bool {
    if g.ic != g.oc || !g.oc.is_multiple_of(L) {
        return false;
    }
    let zeros = vec![0f32; g.oc];
    let b = bias.unwrap_or(&zeros);
    let pixels = g.oh * g.ow;
    let table = indirection(g, p, block());
    for n in 0..g.n {
        let image = &x[n * g.ih * g.iw * g.ic..(n + 1) * g.ih * g.iw * g.ic];
        let o = &mut out[n * pixels * g.oc..(n + 1) * pixels * g.oc];
        let rows = Rows { src: image, zeros: &zeros, table: &table, taps: g.kh * g.kw, depth: g.ic };
        run_depthwise(&rows, w, b, p.activation, o);
    }
    true
}

/// `out[q][c] = act(bias[c] + Σ_t src[ind(q, t) + c] · w[t][c])`, channels in tiles of [`L`].
#[inline(always)]
fn depthwise_rows<T: Tile, const P: usize>(
    rows: &Rows,
    w: &[f32],
    bias: &[f32],
    act: FusedActivation,
    out: &mut [f32],
) {
    let (taps, ch) = (rows.taps, rows.depth);
    let pixels = out.len() / ch;
    let table = rows.check(pixels, P);
    assert!(ch.is_multiple_of(L) && w.len() == taps * ch && bias.len() == ch);
    // The block's input rows, resolved once for all its channel tiles.
    let mut starts: Vec<*const f32> = vec![std::ptr::null(); taps * P];
    for (blk, ind) in table.chunks_exact(taps * P).enumerate() {
        let q0 = blk * P;
        let count = P.min(pixels - q0);
        starts.iter_mut().zip(ind).for_each(|(s, &off)| *s = rows.row(off));
        for c0 in (0..ch).step_by(L) {
            // SAFETY (loads): c0 + L <= ch, the length of the bias, of each weight row and of
            // each input row (asserted above).
            let mut acc = [T::splat(0.0); P];
            for (t, xs) in starts.chunks_exact(P).enumerate() {
                let wv = unsafe { T::load(w.as_ptr().add(t * ch + c0)) };
                for (a, &x) in acc.iter_mut().zip(xs) {
                    *a = T::mul_add(unsafe { T::load(x.add(c0)) }, wv, *a);
                }
            }
            let b = unsafe { T::load(bias.as_ptr().add(c0)) };
            for (p, &a) in acc.iter().enumerate().take(count) {
                store(T::add(a, b), act, &mut out[(q0 + p) * ch + c0..][..L]);
            }
        }
    }
}

/// A pooling window's geometry over NHWC.
pub struct PoolWindow {
    /// Input batch, height, width, channels.
    pub input: [usize; 4],
    /// Output height and width.
    pub output: [usize; 2],
    pub filter: [usize; 2],
    pub stride: [usize; 2],
    /// Padding before the first row and column.
    pub pad: [usize; 2],
}

/// Max or average pooling over a multiple of [`L`] channels, padding never counted, fused
/// activation included. Returns false (computing nothing) for other channel counts.
pub fn pool(x: &[f32], w: &PoolWindow, max: bool, act: FusedActivation, out: &mut [f32]) -> bool {
    if !w.input[3].is_multiple_of(L) {
        return false;
    }
    run_pool(x, w, max, act, out);
    true
}

/// One output pixel at a time, its channels in tiles: the maximum (or the mean) over the input
/// pixels under the window, in row-major order.
#[inline(always)]
fn pool_rows<T: Tile, const P: usize>(x: &[f32], w: &PoolWindow, max: bool, act: FusedActivation, out: &mut [f32]) {
    let [n, ih, iw, c] = w.input;
    let [oh, ow] = w.output;
    assert!(x.len() == n * ih * iw * c && out.len() == n * oh * ow * c && c.is_multiple_of(L));
    let span = |o: usize, axis: usize, size: usize| {
        let start = (o * w.stride[axis]) as isize - w.pad[axis] as isize;
        start.max(0) as usize..((start + w.filter[axis] as isize).min(size as isize)).max(0) as usize
    };
    for b in 0..n {
        for oy in 0..oh {
            let ys = span(oy, 0, ih);
            for ox in 0..ow {
                let xs = span(ox, 1, iw);
                let count = ys.len() * xs.len();
                let o = &mut out[((b * oh + oy) * ow + ox) * c..][..c];
                for c0 in (0..c).step_by(L) {
                    let mut acc = T::splat(if max { f32::NEG_INFINITY } else { 0.0 });
                    for iy in ys.clone() {
                        for ix in xs.clone() {
                            // SAFETY: iy < ih, ix < iw and c0 + L <= c: inside x (asserted above).
                            let v = unsafe { T::load(x.as_ptr().add(((b * ih + iy) * iw + ix) * c + c0)) };
                            acc = if max { acc.max_with(v) } else { T::add(acc, v) };
                        }
                    }
                    if !max && count > 0 {
                        acc = T::div(acc, T::splat(count as f32));
                    }
                    store(acc, act, &mut o[c0..c0 + L]);
                }
            }
        }
    }
}

/// Dense layer `out[r][o] = act(bias[o] + Σ_i x[r][i] · w[o][i])`: per row, a few units' dot
/// products at a time (the kernel's block) over lanes of `L` inputs, the lanes summed in a fixed order.
pub fn fully_connected(
    x: &[f32],
    w: &[f32],
    (units, inner): (usize, usize),
    bias: Option<&[f32]>,
    act: FusedActivation,
    out: &mut [f32],
) {
    if inner == 0 {
        // No inputs: every row is the bias.
        out.iter_mut().enumerate().for_each(|(i, o)| *o = bias.map_or(0.0, |b| b[i % units]));
        super::apply_activation(out, act);
        return;
    }
    run_dense(x, &w[..units * inner], inner, units, bias, act, out);
}

#[inline(always)]
fn dense<T: Tile, const P: usize>(
    x: &[f32],
    w: &[f32],
    inner: usize,
    units: usize,
    bias: Option<&[f32]>,
    act: FusedActivation,
    out: &mut [f32],
) {
    let full = inner / L * L;
    assert!(w.len() == units * inner && x.len().is_multiple_of(inner.max(1)));
    for (xr, or) in x.chunks_exact(inner.max(1)).zip(out.chunks_exact_mut(units.max(1))) {
        for u0 in (0..units).step_by(P) {
            let n = P.min(units - u0);
            let mut acc = [T::splat(0.0); P];
            for i in (0..full).step_by(L) {
                // SAFETY: i + L <= full <= inner, inside the row of x and of each unit's weights.
                let xv = unsafe { T::load(xr.as_ptr().add(i)) };
                for (u, a) in acc.iter_mut().enumerate().take(n) {
                    *a = T::mul_add(xv, unsafe { T::load(w.as_ptr().add((u0 + u) * inner + i)) }, *a);
                }
            }
            for (u, a) in acc.iter().enumerate().take(n) {
                let row = &w[(u0 + u) * inner..(u0 + u + 1) * inner];
                let mut s = sum_lanes(a.to_array());
                for i in full..inner {
                    s += xr[i] * row[i];
                }
                let v = s + bias.map_or(0.0, |b| b[u0 + u]);
                or[u0 + u] = if act == FusedActivation::None {
                    v
                } else {
                    let (lo, hi) = act.range();
                    v.max(lo).min(hi)
                };
            }
        }
    }
}

/// Pairwise sum of one accumulator's lanes.
#[inline(always)]
fn sum_lanes(mut v: [f32; L]) -> f32 {
    let mut n = L;
    while n > 1 {
        n /= 2;
        for l in 0..n {
            v[l] += v[l + n];
        }
    }
    v[0]
}
