//! The int16 GEMM every fast conv-like kernel ends in: `out[r][n] = stage(Σ_k a[r][k] · b[k][n])`
//! for up to [`MR`] rows at a time, with `b` packed once by [`PackedB::new`] or [`PackedB::runs`].
//!
//! Packing: columns in blocks of [`NR`] (zero-padded), the depth in runs of equal length, each
//! zero-padded to even; a block holds, for each depth pair `p`, the [`NR`] columns'
//! `(b[2p][n], b[2p+1][n])` side by side. One `vpmaddwd` of a broadcast row pair
//! `(a[2p], a[2p+1])` with 8 such column pairs gives 8 exact int32 partial sums (each operand fits
//! in 9 bits plus sign), added to the accumulators. As in [`super::vnni`], the rows of `a` are
//! read where they lie ([`Rows`]): a conv reads its patches in the padded image, one run per
//! filter row; a run's padding reads one value past its end, which multiplies a zero weight.

use super::stage::OutputStage;
use super::Isa;

/// Columns per packed block.
pub(crate) const NR: usize = 16;
/// Rows per call of [`gemm_rows`].
pub(crate) const MR: usize = 4;

/// The right-hand matrix, `k × n`, packed for the inner loop.
#[derive(Clone, Debug)]
pub(crate) struct PackedB {
    /// Depth padded (run by run) to even: the length of one contiguous row of `a`.
    pub kp: usize,
    pub n: usize,
    /// Depth runs, and pairs per run.
    segments: usize,
    run_pairs: usize,
    data: Vec<i16>,
}

/// Up to [`super::vnni::MR`] rows of a left-hand matrix of `T`: row `r`'s run `s` starts at
/// `a[starts[r] + offsets[s]]` (`offsets` has one entry per run of the packed matrix).
pub(crate) struct Rows<'a, T> {
    pub a: &'a [T],
    pub starts: [usize; super::vnni::MR],
    pub count: usize,
    pub offsets: &'a [usize],
}

impl<'a, T> Rows<'a, T> {
    /// `count` contiguous rows of `len` values from the start of `a` (one run each).
    pub fn contiguous(a: &'a [T], len: usize, count: usize) -> Rows<'a, T> {
        Rows { a, starts: std::array::from_fn(|r| r * len), count, offsets: &[0] }
    }

    /// Asserts that every run of the first `count` rows lies in `a` (`segments` runs of `span`
    /// values) and that `count` is in `1..=max`.
    pub fn check(&self, segments: usize, span: usize, max: usize) {
        assert!((1..=max).contains(&self.count) && self.offsets.len() == segments);
        let last = self.offsets.iter().max().copied().unwrap_or(0) + span;
        assert!(self.starts[..self.count].iter().all(|&s| s + last <= self.a.len()));
    }
}

impl PackedB {
    /// Packs `b[k][n] = value(k, n)` as one run.
    pub fn new(k: usize, n: usize, value: impl Fn(usize, usize) -> i16) -> PackedB {
        PackedB::runs(1, k, n, value)
    }

    /// Packs `b[k][n] = value(k, n)` for a depth of `segments` runs of `run` values.
    pub fn runs(segments: usize, run: usize, n: usize, value: impl Fn(usize, usize) -> i16) -> PackedB {
        let run2 = run.next_multiple_of(2);
        let kp = segments * run2;
        let blocks = n.div_ceil(NR);
        let mut data = vec![0i16; blocks * kp * NR];
        for block in 0..blocks {
            for kk in 0..segments * run {
                let at = kk / run * run2 + kk % run;
                for lane in 0..NR {
                    let col = block * NR + lane;
                    if col < n {
                        data[(block * kp / 2 + at / 2) * 2 * NR + lane * 2 + at % 2] = value(kk, col);
                    }
                }
            }
        }
        PackedB { kp, n, segments, run_pairs: run2 / 2, data }
    }

    pub fn padded_n(&self) -> usize {
        self.n.div_ceil(NR) * NR
    }

    fn block(&self, block: usize) -> &[i16] {
        &self.data[block * self.kp * NR..(block + 1) * self.kp * NR]
    }
}

/// Rows `0..rows.count` (at most [`MR`]) of `stage(a · b)`, row `r` of the result to
/// `out[r · out_stride..][..b.n]`.
///
/// # Panics
/// If a read of `rows` or a write would leave its slice.
pub(crate) fn gemm_rows(
    isa: Isa,
    b: &PackedB,
    stage: &OutputStage,
    rows: &Rows<i16>,
    out: &mut [i8],
    out_stride: usize,
) {
    rows.check(b.segments, 2 * b.run_pairs, MR);
    assert!(out.len() >= (rows.count - 1) * out_stride + b.n && stage.bias.len() >= b.padded_n());
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `Isa::Avx2` and `Isa::Avx512Vnni` are only constructed after run-time detection
        // (`Isa::checked`), and the reads and writes were bounds-checked above.
        Isa::Avx2 | Isa::Avx512Vnni => unsafe {
            match rows.count {
                1 => avx2::gemm::<1>(b, stage, rows, out, out_stride),
                2 => avx2::gemm::<2>(b, stage, rows, out, out_stride),
                3 => avx2::gemm::<3>(b, stage, rows, out, out_stride),
                _ => avx2::gemm::<4>(b, stage, rows, out, out_stride),
            }
        },
        _ => portable(b, stage, rows, out, out_stride),
    }
}

fn portable(b: &PackedB, stage: &OutputStage, rows: &Rows<i16>, out: &mut [i8], out_stride: usize) {
    let span = 2 * b.run_pairs;
    for block in 0..b.n.div_ceil(NR) {
        let packed = b.block(block);
        let cols = NR.min(b.n - block * NR);
        for r in 0..rows.count {
            let mut acc = [0i32; NR];
            let runs = rows.offsets.iter().map(|&o| &rows.a[rows.starts[r] + o..][..span]);
            for (run, w) in runs.zip(packed.chunks_exact(span * NR)) {
                for (pair, w) in run.chunks_exact(2).zip(w.chunks_exact(2 * NR)) {
                    let (a0, a1) = (pair[0] as i32, pair[1] as i32);
                    for (lane, acc) in acc.iter_mut().enumerate() {
                        let sum = a0 * w[2 * lane] as i32 + a1 * w[2 * lane + 1] as i32;
                        *acc = acc.wrapping_add(sum);
                    }
                }
            }
            let dst = &mut out[r * out_stride + block * NR..][..cols];
            for (lane, d) in dst.iter_mut().enumerate() {
                *d = stage.apply(block * NR + lane, acc[lane]);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::super::stage::{avx2 as vstage, OutputStage};
    use super::{PackedB, Rows, NR};

    /// # Safety
    /// AVX2 available; every run of the `R` rows is inside `a.a`; `out` has room for `R` rows at
    /// `out_stride`.
    #[target_feature(enable = "avx2")]
    pub unsafe fn gemm<const R: usize>(
        b: &PackedB,
        stage: &OutputStage,
        a: &Rows<i16>,
        out: &mut [i8],
        out_stride: usize,
    ) {
        let pairs = b.run_pairs;
        let base = a.a.as_ptr();
        for block in 0..b.n.div_ceil(NR) {
            let mut w = b.block(block).as_ptr() as *const __m256i;
            let mut acc = [[_mm256_setzero_si256(); 2]; R];
            for &offset in a.offsets {
                // SAFETY: every run of every row is inside `a.a` (the caller's contract); the
                // block holds `segments · pairs` pairs of vectors, `pairs` per run.
                unsafe {
                    let x: [*const i32; R] = std::array::from_fn(|r| base.add(a.starts[r] + offset) as *const i32);
                    for p in 0..pairs {
                        let (w0, w1) = (_mm256_loadu_si256(w.add(2 * p)), _mm256_loadu_si256(w.add(2 * p + 1)));
                        for r in 0..R {
                            let xv = _mm256_set1_epi32(x[r].add(p).read_unaligned());
                            acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(xv, w0));
                            acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(xv, w1));
                        }
                    }
                    w = w.add(2 * pairs);
                }
            }
            let col = block * NR;
            let cols = NR.min(b.n - col);
            for (r, acc) in acc.iter().enumerate() {
                // SAFETY: the stage is padded to whole blocks; the row has `cols` bytes at `col`.
                unsafe {
                    let v = vstage::pack16(vstage::apply8(stage, col, acc[0]), vstage::apply8(stage, col + 8, acc[1]));
                    vstage::store_partial(v, out.as_mut_ptr().add(r * out_stride + col), cols);
                }
            }
        }
    }
}
