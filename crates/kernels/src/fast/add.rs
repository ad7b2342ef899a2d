//! Elementwise int8 ADD, the bit-identical fast form of [`crate::add::add`] for `i8`: TFLM's
//! `AddFunc` (offset, left shift by 20, each input rescaled by
//! `MultiplyByQuantizedMultiplierSmallerThanOneExp`, summed, rescaled to the output, offset,
//! clamped) on 8 lanes at a time with the vector forms of [`super::stage`] (16 on AVX-512).

use super::Isa;
use crate::add::{add_func, AddParams};
use crate::fixedpoint::Rounding;

/// An elementwise int8 ADD prepared for [`AddFast::eval`].
#[derive(Clone, Debug)]
pub struct AddFast {
    params: AddParams,
    isa: Isa,
}

impl AddFast {
    /// `None` when the fast path does not cover `params` (single rounding, negative multipliers,
    /// or shifts outside what `prepare_add` produces).
    pub fn new(params: &AddParams, isa: Isa) -> Option<AddFast> {
        let p = params;
        let multipliers = [p.input1_multiplier, p.input2_multiplier, p.output_multiplier];
        let shifts = [p.input1_shift, p.input2_shift, p.output_shift];
        let in_range = multipliers.iter().all(|&m| m >= 0) && shifts.iter().all(|&s| s <= 0);
        // `(x + offset) · 2^left_shift` must not overflow for any int8 `x` (`|x + offset| ≤ 255`).
        let offsets_fit = [p.input1_offset, p.input2_offset].iter().all(|o| (-128..=128).contains(o));
        if p.rounding != Rounding::Double || !in_range || !offsets_fit || !(0..=22).contains(&p.left_shift) {
            return None;
        }
        Some(AddFast { params: *params, isa: isa.checked() })
    }

    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// `output[i] = input1[i] + input2[i]` in TFLM's arithmetic.
    ///
    /// # Panics
    /// If the three slices differ in length.
    pub fn eval(&self, input1: &[i8], input2: &[i8], output: &mut [i8]) {
        assert!(input1.len() == output.len() && input2.len() == output.len());
        let mut done = 0;
        #[cfg(target_arch = "x86_64")]
        if self.isa == Isa::Avx512Vnni {
            // SAFETY: `Isa::Avx512Vnni` only exists after run-time detection; lengths checked above.
            done = unsafe { avx512::add(&self.params, input1, input2, output) };
        } else if self.isa == Isa::Avx2 {
            // SAFETY: `Isa::Avx2` only exists after run-time detection; lengths checked above.
            done = unsafe { avx2::add(&self.params, input1, input2, output) };
        }
        for ((o, &x), &y) in output[done..].iter_mut().zip(&input1[done..]).zip(&input2[done..]) {
            *o = add_func(&self.params, x, y);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::super::stage::avx2::{rounding_divide_by_pot, srdhm};
    use crate::add::AddParams;

    /// Adds the first multiple of 8 elements; returns how many it did.
    ///
    /// # Safety
    /// AVX2 available; the three slices have the same length.
    #[target_feature(enable = "avx2")]
    pub unsafe fn add(p: &AddParams, input1: &[i8], input2: &[i8], output: &mut [i8]) -> usize {
        let n = output.len() / 8 * 8;
        let scaled = |x: __m256i, offset: i32, multiplier: i32, shift: i32| {
            let shifted =
                _mm256_sllv_epi32(_mm256_add_epi32(x, _mm256_set1_epi32(offset)), _mm256_set1_epi32(p.left_shift));
            let exponent = _mm256_set1_epi32((-shift).min(31));
            rounding_divide_by_pot(srdhm(shifted, _mm256_set1_epi32(multiplier)), exponent)
        };
        let (min, max, offset) = (
            _mm256_set1_epi32(p.quantized_activation_min),
            _mm256_set1_epi32(p.quantized_activation_max),
            _mm256_set1_epi32(p.output_offset),
        );
        for i in (0..n).step_by(8) {
            // SAFETY: `i + 8 ≤ n ≤` every slice's length.
            unsafe {
                let x = _mm256_cvtepi8_epi32(_mm_loadl_epi64(input1.as_ptr().add(i) as *const __m128i));
                let y = _mm256_cvtepi8_epi32(_mm_loadl_epi64(input2.as_ptr().add(i) as *const __m128i));
                let a = scaled(x, p.input1_offset, p.input1_multiplier, p.input1_shift);
                let b = scaled(y, p.input2_offset, p.input2_multiplier, p.input2_shift);
                let raw = _mm256_add_epi32(a, b);
                let out = rounding_divide_by_pot(
                    srdhm(raw, _mm256_set1_epi32(p.output_multiplier)),
                    _mm256_set1_epi32((-p.output_shift).min(31)),
                );
                let out = _mm256_min_epi32(_mm256_max_epi32(_mm256_add_epi32(out, offset), min), max);
                let w = _mm256_packs_epi32(out, out);
                let w = _mm256_permute4x64_epi64(w, 0b00_00_10_00);
                let b = _mm256_packs_epi16(w, w);
                _mm_storel_epi64(output.as_mut_ptr().add(i) as *mut __m128i, _mm256_castsi256_si128(b));
            }
        }
        n
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::super::stage::avx512::{rounding_divide_by_pot, srdhm, store16};
    use crate::add::AddParams;

    /// Adds the first multiple of 16 elements; returns how many it did.
    ///
    /// # Safety
    /// AVX-512F available; the three slices have the same length.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn add(p: &AddParams, input1: &[i8], input2: &[i8], output: &mut [i8]) -> usize {
        let n = output.len() / 16 * 16;
        let scaled = |x: __m512i, offset: i32, multiplier: i32, shift: i32| {
            let shifted =
                _mm512_sllv_epi32(_mm512_add_epi32(x, _mm512_set1_epi32(offset)), _mm512_set1_epi32(p.left_shift));
            let exponent = _mm512_set1_epi32((-shift).min(31));
            rounding_divide_by_pot(srdhm(shifted, _mm512_set1_epi32(multiplier)), exponent)
        };
        let (min, max, offset) = (
            _mm512_set1_epi32(p.quantized_activation_min),
            _mm512_set1_epi32(p.quantized_activation_max),
            _mm512_set1_epi32(p.output_offset),
        );
        for i in (0..n).step_by(16) {
            // SAFETY: `i + 16 ≤ n ≤` every slice's length.
            unsafe {
                let x = _mm512_cvtepi8_epi32(_mm_loadu_si128(input1.as_ptr().add(i) as *const __m128i));
                let y = _mm512_cvtepi8_epi32(_mm_loadu_si128(input2.as_ptr().add(i) as *const __m128i));
                let a = scaled(x, p.input1_offset, p.input1_multiplier, p.input1_shift);
                let b = scaled(y, p.input2_offset, p.input2_multiplier, p.input2_shift);
                let raw = _mm512_add_epi32(a, b);
                let out = rounding_divide_by_pot(
                    srdhm(raw, _mm512_set1_epi32(p.output_multiplier)),
                    _mm512_set1_epi32((-p.output_shift).min(31)),
                );
                let out = _mm512_min_epi32(_mm512_max_epi32(_mm512_add_epi32(out, offset), min), max);
                store16(out, output.as_mut_ptr().add(i), 16);
            }
        }
        n
    }
}
