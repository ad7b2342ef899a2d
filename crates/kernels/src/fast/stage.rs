//! TFLM's int8 output stage over many channels at once: bias added (wrapping), then
//! `MultiplyByQuantizedMultiplier` in the default build (`SaturatingRoundingDoublingHighMul` of
//! the left-shifted value, then `RoundingDivideByPOT`), the output offset, the activation clamp.
//!
//! The vector form uses one identity: for a multiplier `b ≥ 0` (every quantized multiplier is),
//! gemmlowp's `(a·b + nudge) / 2^31` with its sign-dependent nudge and C's truncating division
//! equals `floor((a·b + 2^30) / 2^31)` for every `a`, because for `a·b < 0` the nudge
//! `1 − 2^30` plus the truncation's `2^31 − 1` is `2^30`. The only saturating case,
//! `a = b = i32::MIN`, needs a negative `b`, which [`OutputStage::new`] refuses. The tests compare
//! both forms with the scalar reference on random and edge values.

use crate::fixedpoint::multiply_by_quantized_multiplier;

/// Per-channel output stage of a conv-like kernel, padded with neutral channels up to `padded`.
#[derive(Clone, Debug)]
pub struct OutputStage {
    pub(crate) bias: Vec<i32>,
    pub(crate) multiplier: Vec<i32>,
    pub(crate) left_shift: Vec<i32>,
    pub(crate) right_shift: Vec<i32>,
    /// The reference's `shift` per channel, for the scalar form.
    pub(crate) shift: Vec<i32>,
    pub(crate) offset: i32,
    pub(crate) min: i32,
    pub(crate) max: i32,
}

impl OutputStage {
    /// `None` when a multiplier is negative or a left shift reaches 32 bits (TFLM never produces
    /// either; the reference kernel then stays in charge).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        padded: usize,
        bias: Option<&[i32]>,
        multiplier: &[i32],
        shift: &[i32],
        offset: i32,
        min: i32,
        max: i32,
    ) -> Option<OutputStage> {
        let channels = multiplier.len();
        assert!(shift.len() == channels && padded >= channels);
        if multiplier.iter().any(|&m| m < 0) || shift.iter().any(|&s| s > 31) {
            return None;
        }
        let pad = |v: &mut Vec<i32>| v.resize(padded, 0);
        let mut bias = bias.map_or_else(|| vec![0; channels], <[i32]>::to_vec);
        assert_eq!(bias.len(), channels);
        pad(&mut bias);
        let mut m = multiplier.to_vec();
        pad(&mut m);
        let mut s = shift.to_vec();
        pad(&mut s);
        let left_shift = s.iter().map(|&s| s.max(0)).collect();
        let right_shift = s.iter().map(|&s| (-s).clamp(0, 31)).collect();
        Some(OutputStage { bias, multiplier: m, left_shift, right_shift, shift: s, offset, min, max })
    }

    /// Channel `c` of an accumulator that does not yet hold the bias.
    #[inline]
    pub fn apply(&self, c: usize, acc: i32) -> i8 {
        let acc = acc.wrapping_add(self.bias[c]);
        let v = multiply_by_quantized_multiplier(acc, self.multiplier[c], self.shift[c]);
        v.wrapping_add(self.offset).clamp(self.min, self.max) as i8
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2 {
    use std::arch::x86_64::*;

    use super::OutputStage;

    /// Channels `c .. c + 8` of `acc` (bias not yet added), as int32 lanes ready to pack.
    ///
    /// # Safety
    /// AVX2 must be available and `c + 8 ≤` the stage's padded length.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn apply8(stage: &OutputStage, c: usize, acc: __m256i) -> __m256i {
        let load = |v: &[i32]| unsafe { _mm256_loadu_si256(v[c..c + 8].as_ptr() as *const __m256i) };
        let acc = _mm256_add_epi32(acc, load(&stage.bias));
        let a = _mm256_sllv_epi32(acc, load(&stage.left_shift));
        let x = srdhm(a, load(&stage.multiplier));
        let x = rounding_divide_by_pot(x, load(&stage.right_shift));
        let x = _mm256_add_epi32(x, _mm256_set1_epi32(stage.offset));
        _mm256_min_epi32(_mm256_max_epi32(x, _mm256_set1_epi32(stage.min)), _mm256_set1_epi32(stage.max))
    }

    /// `SaturatingRoundingDoublingHighMul(a, b)` for `b ≥ 0`, lane by lane (see the module docs).
    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn srdhm(a: __m256i, b: __m256i) -> __m256i {
        let nudge = _mm256_set1_epi64x(1 << 30);
        let even = _mm256_add_epi64(_mm256_mul_epi32(a, b), nudge);
        let odd = _mm256_add_epi64(_mm256_mul_epi32(_mm256_srli_epi64(a, 32), _mm256_srli_epi64(b, 32)), nudge);
        // Bits 31..62 of each product: low half of the even lanes, high half of the odd ones.
        _mm256_blend_epi32(_mm256_srli_epi64(even, 31), _mm256_slli_epi64(odd, 1), 0b1010_1010)
    }

    /// gemmlowp `RoundingDivideByPOT(x, e)` with a per-lane exponent `0 ≤ e ≤ 31`.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn rounding_divide_by_pot(x: __m256i, e: __m256i) -> __m256i {
        let zero = _mm256_setzero_si256();
        let mask = _mm256_sub_epi32(_mm256_sllv_epi32(_mm256_set1_epi32(1), e), _mm256_set1_epi32(1));
        let remainder = _mm256_and_si256(x, mask);
        // threshold = (mask >> 1) + (x < 0); the comparison yields −1 for true.
        let threshold = _mm256_sub_epi32(_mm256_srli_epi32(mask, 1), _mm256_cmpgt_epi32(zero, x));
        _mm256_sub_epi32(_mm256_srav_epi32(x, e), _mm256_cmpgt_epi32(remainder, threshold))
    }

    /// Packs two vectors of int32 already clamped to int8 into 16 bytes, in order.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn pack16(lo: __m256i, hi: __m256i) -> __m128i {
        let w = _mm256_packs_epi32(lo, hi); // [lo0-3 hi0-3 | lo4-7 hi4-7] as i16
        let w = _mm256_permute4x64_epi64(w, 0b11_01_10_00); // [lo0-3 lo4-7 | hi0-3 hi4-7]
        let b = _mm256_packs_epi16(w, w); // each lane: its 8 values twice, as i8
        _mm_unpacklo_epi64(_mm256_castsi256_si128(b), _mm256_extracti128_si256(b, 1))
    }

    /// Stores the first `n ≤ 16` bytes of `v` at `out`.
    ///
    /// # Safety
    /// `out` must be valid for `n` bytes.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub unsafe fn store_partial(v: __m128i, out: *mut i8, n: usize) {
        if n == 16 {
            unsafe { _mm_storeu_si128(out as *mut __m128i, v) };
        } else {
            let mut tmp = [0i8; 16];
            unsafe {
                _mm_storeu_si128(tmp.as_mut_ptr() as *mut __m128i, v);
                std::ptr::copy_nonoverlapping(tmp.as_ptr(), out, n);
            }
        }
    }
}

/// The same output stage on 16 channels at a time (AVX-512), for [`super::Isa::Avx512Vnni`].
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512 {
    use std::arch::x86_64::*;

    use super::OutputStage;

    /// Channels `c .. c + 16` of `acc` (bias not yet added), as int32 lanes within int8.
    ///
    /// # Safety
    /// AVX-512F must be available and `c + 16 ≤` the stage's padded length.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn apply16(stage: &OutputStage, c: usize, acc: __m512i) -> __m512i {
        let load = |v: &[i32]| unsafe { _mm512_loadu_si512(v[c..c + 16].as_ptr() as *const __m512i) };
        let acc = _mm512_add_epi32(acc, load(&stage.bias));
        let a = _mm512_sllv_epi32(acc, load(&stage.left_shift));
        let x = srdhm(a, load(&stage.multiplier));
        let x = rounding_divide_by_pot(x, load(&stage.right_shift));
        let x = _mm512_add_epi32(x, _mm512_set1_epi32(stage.offset));
        _mm512_min_epi32(_mm512_max_epi32(x, _mm512_set1_epi32(stage.min)), _mm512_set1_epi32(stage.max))
    }

    /// `SaturatingRoundingDoublingHighMul(a, b)` for `b ≥ 0`, lane by lane (see the module docs).
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn srdhm(a: __m512i, b: __m512i) -> __m512i {
        let nudge = _mm512_set1_epi64(1 << 30);
        let even = _mm512_add_epi64(_mm512_mul_epi32(a, b), nudge);
        let odd = _mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64::<32>(a), _mm512_srli_epi64::<32>(b)), nudge);
        // Bits 31..62 of each product: low half of the even lanes, high half of the odd ones.
        _mm512_mask_blend_epi32(0xaaaa, _mm512_srli_epi64::<31>(even), _mm512_slli_epi64::<1>(odd))
    }

    /// gemmlowp `RoundingDivideByPOT(x, e)` with a per-lane exponent `0 ≤ e ≤ 31`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn rounding_divide_by_pot(x: __m512i, e: __m512i) -> __m512i {
        let one = _mm512_set1_epi32(1);
        let mask = _mm512_sub_epi32(_mm512_sllv_epi32(one, e), one);
        let remainder = _mm512_and_si512(x, mask);
        // threshold = (mask >> 1) + (x < 0).
        let half = _mm512_srli_epi32::<1>(mask);
        let threshold = _mm512_mask_add_epi32(half, _mm512_cmplt_epi32_mask(x, _mm512_setzero_si512()), half, one);
        let quotient = _mm512_srav_epi32(x, e);
        _mm512_mask_add_epi32(quotient, _mm512_cmpgt_epi32_mask(remainder, threshold), quotient, one)
    }

    /// Stores the first `n ≤ 16` lanes of `v` (int32 within int8) as bytes at `out`.
    ///
    /// # Safety
    /// AVX-512F must be available and `out` valid for `n` bytes.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn store16(v: __m512i, out: *mut i8, n: usize) {
        let mask = if n >= 16 { u16::MAX } else { (1u16 << n) - 1 };
        unsafe { _mm512_mask_cvtsepi32_storeu_epi8(out, mask, v) };
    }
}
