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
//! Packing: columns in blocks of [`NB`] (zero-padded), depth in quads (zero-padded to a multiple of
//! 4); a block holds, for each depth quad, the [`NB`] columns' 4 bytes side by side: one 64-byte
//! vector per quad.

use super::stage::OutputStage;

/// Columns per packed block (one 512-bit vector of int32).
pub(crate) const NB: usize = 16;
/// Rows per call of [`gemm_rows`].
pub(crate) const MR: usize = 8;

/// The right-hand matrix, `k × n`, packed for `vpdpbusd`.
#[derive(Clone, Debug)]
pub(crate) struct PackedQ {
    /// Depth padded to a multiple of 4: the length of one row of `a`.
    pub k4: usize,
    pub n: usize,
    data: Vec<i8>,
    /// `Σ_k b[k][n]` per column.
    column_sums: Vec<i32>,
}

impl PackedQ {
    /// Packs `b[k][n] = value(k, n)`.
    pub fn new(k: usize, n: usize, value: impl Fn(usize, usize) -> i8) -> PackedQ {
        let k4 = k.next_multiple_of(4);
        let blocks = n.div_ceil(NB);
        let mut data = vec![0i8; blocks * k4 * NB];
        let mut column_sums = vec![0i32; n];
        for (col, sum) in column_sums.iter_mut().enumerate() {
            let (block, lane) = (col / NB, col % NB);
            for kk in 0..k {
                let w = value(kk, col);
                data[(block * k4 / 4 + kk / 4) * 4 * NB + lane * 4 + kk % 4] = w;
                *sum += w as i32;
            }
        }
        PackedQ { k4, n, data, column_sums }
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

/// Rows `0..rows` (`rows ≤ MR`) of `stage(a · b)`: `a` holds `rows` rows of `b.k4` bytes (the
/// padding columns any value), row `r` of the result goes to `out[r · out_stride..][..b.n]`.
/// The stage's bias must be [`PackedQ::folded_bias`].
///
/// # Panics
/// If the CPU lacks AVX-512 VNNI (callers get here only through [`super::Isa::Avx512Vnni`]), or
/// a slice is short.
pub(crate) fn gemm_rows(b: &PackedQ, stage: &OutputStage, a: &[u8], rows: usize, out: &mut [i8], out_stride: usize) {
    assert!((1..=MR).contains(&rows) && a.len() >= rows * b.k4);
    assert!(out.len() >= (rows - 1) * out_stride + b.n && stage.bias.len() >= b.padded_n());
    #[cfg(target_arch = "x86_64")]
    {
        assert!(super::Isa::detect() == super::Isa::Avx512Vnni);
        // SAFETY: the CPU has AVX-512 VNNI (asserted), the lengths were asserted above.
        unsafe { avx512::gemm(b, stage, a, rows, out, out_stride) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("the VNNI GEMM exists on x86-64 only");
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::super::stage::{avx512 as vstage, OutputStage};
    use super::{PackedQ, NB};

    /// # Safety
    /// AVX-512 VNNI available; `a` holds `rows · b.k4` bytes; `out` has room for `rows` rows.
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vnni")]
    pub unsafe fn gemm(b: &PackedQ, stage: &OutputStage, a: &[u8], rows: usize, out: &mut [i8], out_stride: usize) {
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

    /// `R` rows by `C` column blocks from block `block0`.
    ///
    /// # Safety
    /// As [`gemm`], with `rows = R` and `block0 + C ≤` the number of blocks.
    #[inline]
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vnni")]
    unsafe fn kernel<const R: usize, const C: usize>(
        b: &PackedQ,
        stage: &OutputStage,
        a: &[u8],
        block0: usize,
        out: &mut [i8],
        out_stride: usize,
    ) {
        let quads = b.k4 / 4;
        let w: [*const __m512i; C] = std::array::from_fn(|c| b.block(block0 + c) as *const __m512i);
        let a_ptr = a.as_ptr() as *const i32;
        let mut acc = [[_mm512_setzero_si512(); C]; R];
        for q in 0..quads {
            // SAFETY: each block holds `quads` vectors; row `r` of `a` holds `quads` byte quads.
            unsafe {
                let wv: [__m512i; C] = std::array::from_fn(|c| _mm512_loadu_si512(w[c].add(q)));
                for (r, acc) in acc.iter_mut().enumerate() {
                    let x = _mm512_set1_epi32(a_ptr.add(r * quads + q).read_unaligned());
                    for (acc, &wv) in acc.iter_mut().zip(&wv) {
                        *acc = _mm512_dpbusd_epi32(*acc, x, wv);
                    }
                }
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
