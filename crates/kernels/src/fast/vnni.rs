//! The int8 GEMM on AVX-512 VNNI: `out[r][n] = stage(Σ_k (a[r][k] + input_offset) · b[k][n])`
//! with `vpdpbusd`, which multiplies 4 unsigned bytes by 4 signed bytes and adds the 4 exact
//! products to an int32 lane (no saturation, wrapping like the reference's sum).
//!
//! `vpdpbusd` wants one unsigned operand. The rows of `a` are stored as `x + 128` (`x ^ 0x80`, a
//! byte), and a tap the reference skips (padding) as `128 - input_offset`, the byte whose
//! `x + input_offset` is 0. Then for every column
//! `Σ_k byte[k] · b[k][n] = Σ_k (x[k] + input_offset) · b[k][n] + (128 - input_offset) · Σ_k b[k][n]`
//! (padding taps contribute 0 to the first sum), so subtracting `(128 - input_offset) · Σ_k b[k][n]`
//! from the bias, once in prepare, gives the reference's accumulator modulo 2^32, which is all the
//! output stage reads. This needs `b` in int8 and `128 - input_offset` in a byte, that is an int8
//! input zero point ([`pad_byte`]); callers keep the int16 GEMM otherwise.
//!
//! Packing: columns in blocks of [`NB`] (zero-padded); the depth in [`PackedQ::segments`] runs
//! of equal length, each zero-padded to a multiple of 4; a block holds, for each depth quad, the
//! [`NB`] columns' 4 bytes side by side: one 64-byte vector per quad. The rows of `a` need not be
//! contiguous: row `r`'s run `s` is read at `starts[r] + offsets[s]` ([`Rows`]), so a conv
//! multiplies its filter with the patches where they lie in the padded image, one run per filter
//! row (an indirect GEMM, no copies). A run's padding reads up to 7 bytes past its end; they
//! multiply zero weights, so their values never matter, only that they are in `a`.
//!
//! A matrix of at most [`NB`] columns is packed in pairs of quads instead (runs padded to a
//! multiple of 8): one 64-byte vector holds 8 columns' quads `2p` and `2p + 1` side by side, so
//! one 8-byte broadcast of a row feeds two `vpdpbusd` (instead of one 4-byte broadcast per
//! `vpdpbusd`, which left a thin layer bound by loads); the two halves of each column's sum are
//! added before the output stage.

pub(crate) use super::gemm::Rows;
use super::stage::OutputStage;

/// Columns per packed block (one 512-bit vector of int32).
pub(crate) const NB: usize = 16;
/// Rows per call of [`gemm_rows`].
pub(crate) const MR: usize = 8;

/// The right-hand matrix, `k × n`, packed for `vpdpbusd`.
#[derive(Clone, Debug)]
pub(crate) struct PackedQ {
    /// Depth padded (run by run) to multiples of 4: the length of one contiguous row of `a`.
    pub k4: usize,
    pub n: usize,
    /// Depth runs, and quads per run.
    segments: usize,
    run_quads: usize,
    /// Packed in pairs of quads (at most [`NB`] columns; see the module docs).
    paired: bool,
    data: Vec<i8>,
    /// `Σ_k b[k][n]` per column.
    column_sums: Vec<i32>,
}

impl PackedQ {
    /// Packs `b[k][n] = value(k, n)` as one run.
    pub fn new(k: usize, n: usize, value: impl Fn(usize, usize) -> i8) -> PackedQ {
        PackedQ::runs(1, k, n, value)
    }

    /// Packs `b[k][n] = value(k, n)` for a depth of `segments` runs of `run` values.
    pub fn runs(segments: usize, run: usize, n: usize, value: impl Fn(usize, usize) -> i8) -> PackedQ {
        let paired = n <= NB;
        let run4 = run.next_multiple_of(if paired { 8 } else { 4 });
        let k4 = segments * run4;
        let blocks = n.div_ceil(NB);
        let mut data = vec![0i8; blocks * k4 * NB];
        let mut column_sums = vec![0i32; n];
        for (col, sum) in column_sums.iter_mut().enumerate() {
            let (block, lane) = (col / NB, col % NB);
            for kk in 0..segments * run {
                let w = value(kk, col);
                let at = kk / run * run4 + kk % run;
                let (quad, byte) = (at / 4, at % 4);
                let index = if paired {
                    let (vector, lane) = (2 * (quad / 2) + lane / 8, (lane % 8) * 2 + quad % 2);
                    vector * 4 * NB + lane * 4 + byte
                } else {
                    (block * k4 / 4 + quad) * 4 * NB + lane * 4 + byte
                };
                data[index] = w;
                *sum += w as i32;
            }
        }
        PackedQ { k4, n, segments, run_quads: run4 / 4, paired, data, column_sums }
    }

    /// The bytes one run of a row spans (its length padded to a multiple of 4).
    pub fn run_bytes(&self) -> usize {
        4 * self.run_quads
    }

    pub fn padded_n(&self) -> usize {
        self.n.div_ceil(NB) * NB
    }

    /// The bias that makes the byte form's sums the reference's (see the module docs).
    pub fn folded_bias(&self, bias: Option<&[i32]>, input_offset: i32) -> Vec<i32> {
        let correction = 128 - input_offset;
        (0..self.n)
            .map(|c| bias.map_or(0, |b| b[c]).wrapping_sub(correction.wrapping_mul(self.column_sums[c])))
            .collect()
    }

    fn block(&self, block: usize) -> *const i8 {
        self.data[block * self.k4 * NB..].as_ptr()
    }
}

/// The byte a skipped (padding) tap is stored as, `128 - input_offset`; `None` when the input
/// offset is not that of an int8 zero point.
pub(crate) fn pad_byte(input_offset: i32) -> Option<u8> {
    u8::try_from(128 - input_offset).ok()
}

/// The byte form of an int8 activation.
#[inline(always)]
pub(crate) fn to_byte(x: i8) -> u8 {
    (x as u8) ^ 0x80
}

/// Views int16 scratch as bytes (twice as many).
pub(crate) fn as_bytes(scratch: &mut [i16]) -> &mut [u8] {
    // SAFETY: u8 has alignment 1 and every bit pattern is valid for both types; the length
    // covers the same memory.
    unsafe { std::slice::from_raw_parts_mut(scratch.as_mut_ptr() as *mut u8, scratch.len() * 2) }
}

/// Rows `0..rows.count` of `stage(a · b)`, row `r` of the result to `out[r · out_stride..][..b.n]`.
/// The stage's bias must be [`PackedQ::folded_bias`].
///
/// # Panics
/// If a read of `rows` or a write would leave its slice.
///
/// # Safety
/// The CPU has AVX-512 VNNI (callers get here only through [`super::Isa::Avx512Vnni`], which
/// [`super::Isa::checked`] returns only then).
pub(crate) unsafe fn gemm_rows(b: &PackedQ, stage: &OutputStage, rows: &Rows<u8>, out: &mut [i8], out_stride: usize) {
    rows.check(b.segments, b.run_bytes(), MR);
    assert!(out.len() >= (rows.count - 1) * out_stride + b.n && stage.bias.len() >= b.padded_n());
    #[cfg(target_arch = "x86_64")]
    {
        debug_assert!(super::Isa::detect() == super::Isa::Avx512Vnni);
        // SAFETY: the CPU has AVX-512 VNNI (the caller's contract); every read was bounds-checked
        // above (a run reads `run_bytes` from its start) and so were the writes.
        unsafe { avx512::gemm(b, stage, rows, out, out_stride) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("the VNNI GEMM exists on x86-64 only");
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::super::stage::{avx512 as vstage, OutputStage};
    use super::{PackedQ, Rows, NB};

    /// # Safety
    /// AVX-512 VNNI available; every run of `rows` is inside `rows.a`; `out` has room for
    /// `rows.count` rows.
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vnni")]
    pub unsafe fn gemm(b: &PackedQ, stage: &OutputStage, a: &Rows<u8>, out: &mut [i8], out_stride: usize) {
        let rows = a.count;
        if b.paired {
            // SAFETY: forwarded from the caller.
            unsafe {
                match rows {
                    1 => paired::<1>(b, stage, a, out, out_stride),
                    2 => paired::<2>(b, stage, a, out, out_stride),
                    3 => paired::<3>(b, stage, a, out, out_stride),
                    4 => paired::<4>(b, stage, a, out, out_stride),
                    5 => paired::<5>(b, stage, a, out, out_stride),
                    6 => paired::<6>(b, stage, a, out, out_stride),
                    7 => paired::<7>(b, stage, a, out, out_stride),
                    _ => paired::<8>(b, stage, a, out, out_stride),
                }
            }
            return;
        }
        let blocks = b.n.div_ceil(NB);
        let mut block = 0;
        while block < blocks {
            let c = if blocks - block >= 2 { 2 } else { 1 };
            // SAFETY: forwarded from the caller; `block + c ≤ blocks`.
            unsafe {
                match (c, rows) {
                    (2, 1) => kernel::<1, 2>(b, stage, a, block, out, out_stride),
                    (2, 2) => kernel::<2, 2>(b, stage, a, block, out, out_stride),
                    (2, 3) => kernel::<3, 2>(b, stage, a, block, out, out_stride),
                    (2, 4) => kernel::<4, 2>(b, stage, a, block, out, out_stride),
                    (2, 5) => kernel::<5, 2>(b, stage, a, block, out, out_stride),
                    (2, 6) => kernel::<6, 2>(b, stage, a, block, out, out_stride),
                    (2, 7) => kernel::<7, 2>(b, stage, a, block, out, out_stride),
                    (2, _) => kernel::<8, 2>(b, stage, a, block, out, out_stride),
                    (_, 1) => kernel::<1, 1>(b, stage, a, block, out, out_stride),
                    (_, 2) => kernel::<2, 1>(b, stage, a, block, out, out_stride),
                    (_, 3) => kernel::<3, 1>(b, stage, a, block, out, out_stride),
                    (_, 4) => kernel::<4, 1>(b, stage, a, block, out, out_stride),
                    (_, 5) => kernel::<5, 1>(b, stage, a, block, out, out_stride),
                    (_, 6) => kernel::<6, 1>(b, stage, a, block, out, out_stride),
                    (_, 7) => kernel::<7, 1>(b, stage, a, block, out, out_stride),
                    (_, _) => kernel::<8, 1>(b, stage, a, block, out, out_stride),
                }
            }
            block += c;
        }
    }

    /// `R` rows of a matrix packed in pairs of quads (one block).
    ///
    /// # Safety
    /// As [`gemm`], with `a.count = R` and `b.paired`.
    #[inline]
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vnni")]
    unsafe fn paired<const R: usize>(
        b: &PackedQ,
        stage: &OutputStage,
        a: &Rows<u8>,
        out: &mut [i8],
        out_stride: usize,
    ) {
        let pairs = b.run_quads / 2;
        let mut w = b.block(0) as *const __m512i;
        let base = a.a.as_ptr();
        let mut acc = [[_mm512_setzero_si512(); 2]; R];
        for &offset in a.offsets {
            // SAFETY: every run of every row is inside `a.a` (the caller's contract); the block
            // holds `segments · pairs` pairs of vectors, `pairs` per run.
            unsafe {
                let x: [*const i64; R] = std::array::from_fn(|r| base.add(a.starts[r] + offset) as *const i64);
                for p in 0..pairs {
                    let (w0, w1) = (_mm512_loadu_si512(w.add(2 * p)), _mm512_loadu_si512(w.add(2 * p + 1)));
                    for r in 0..R {
                        let xv = _mm512_set1_epi64(x[r].add(p).read_unaligned());
                        acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], xv, w0);
                        acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], xv, w1);
                    }
                }
                w = w.add(2 * pairs);
            }
        }
        // Lane 2j of `acc[r][v]` holds column 8v + j's sum over the even quads, lane 2j + 1 over
        // the odd ones.
        let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
        for (r, [lo, hi]) in acc.iter().enumerate() {
            let sum =
                _mm512_add_epi32(_mm512_permutex2var_epi32(*lo, even, *hi), _mm512_permutex2var_epi32(*lo, odd, *hi));
            // SAFETY: the stage is padded to a whole block; the row has `b.n` bytes.
            unsafe { vstage::store16(vstage::apply16(stage, 0, sum), out.as_mut_ptr().add(r * out_stride), b.n) };
        }
    }

    /// `acc` plus one run: `quads` quads of each row `x[r]` times `quads` vectors of each block
    /// `w[c]`.
    ///
    /// # Safety
    /// AVX-512 VNNI available; the reads are in bounds.
    #[inline(always)]
    unsafe fn run<const R: usize, const C: usize>(
        mut acc: [[__m512i; C]; R],
        x: [*const i32; R],
        w: [*const __m512i; C],
        quads: usize,
    ) -> [[__m512i; C]; R] {
        for q in 0..quads {
            // SAFETY: the caller's contract.
            unsafe {
                let wv: [__m512i; C] = std::array::from_fn(|c| _mm512_loadu_si512(w[c].add(q)));
                for r in 0..R {
                    let xv = _mm512_set1_epi32(x[r].add(q).read_unaligned());
                    for c in 0..C {
                        acc[r][c] = _mm512_dpbusd_epi32(acc[r][c], xv, wv[c]);
                    }
                }
            }
        }
        acc
    }

    /// `R` rows by `C` column blocks from block `block0`.
    ///
    /// # Safety
    /// As [`gemm`], with `a.count = R` and `block0 + C ≤` the number of blocks.
    #[inline]
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vnni")]
    unsafe fn kernel<const R: usize, const C: usize>(
        b: &PackedQ,
        stage: &OutputStage,
        a: &Rows<u8>,
        block0: usize,
        out: &mut [i8],
        out_stride: usize,
    ) {
        let quads = b.run_quads;
        let mut w: [*const __m512i; C] = std::array::from_fn(|c| b.block(block0 + c) as *const __m512i);
        let base = a.a.as_ptr();
        let mut acc = [[_mm512_setzero_si512(); C]; R];
        for &offset in a.offsets {
            // SAFETY: every run of every row is inside `a.a` (the caller's contract); each block
            // holds `segments · quads` vectors, `quads` per run.
            unsafe {
                let x: [*const i32; R] = std::array::from_fn(|r| base.add(a.starts[r] + offset) as *const i32);
                acc = run(acc, x, w, quads);
                w = w.map(|w| w.add(quads));
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for (c, &v) in acc.iter().enumerate() {
                let col = (block0 + c) * NB;
                let cols = NB.min(b.n - col);
                // SAFETY: the stage is padded to whole blocks; the row has `cols` bytes at `col`.
                unsafe {
                    vstage::store16(vstage::apply16(stage, col, v), out.as_mut_ptr().add(r * out_stride + col), cols)
                };
            }
        }
    }
}
