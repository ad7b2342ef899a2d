//! QUANTIZE from int8 to int8 with different params (`reference/requantize.h::Requantize`),
//! prepared as in `micro/kernels/quantize_common.cc` with the multiplier `double(in_s) / double(out_s)`.

use crate::fixedpoint::{multiply_by_quantized_multiplier_with, quantize_multiplier_with, Rounding};
use crate::{saturate_s8, KernelError, QParamsS8};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RequantizeParams {
    pub input_zero_point: i32,
    pub output_zero_point: i32,
    pub effective_scale_multiplier: i32,
    pub effective_scale_shift: i32,
    pub rounding: Rounding,
}

pub fn prepare_requantize_s8(
    input: QParamsS8,
    output: QParamsS8,
    rounding: Rounding,
) -> Result<RequantizeParams, KernelError> {
    input.validate("input")?;
    output.validate("output")?;
    let q = quantize_multiplier_with(input.scale as f64 / output.scale as f64, rounding)?;
    Ok(RequantizeParams {
        input_zero_point: input.zero_point,
        output_zero_point: output.zero_point,
        effective_scale_multiplier: q.multiplier,
        effective_scale_shift: q.shift,
        rounding,
    })
}

/// TFLM `reference_ops::Requantize<int8_t, int8_t>`. (Its xor-0x80 fast path only applies to
/// mixed int8/uint8 types.)
///
/// # Panics
/// If the slices differ in length.
pub fn requantize_s8(params: &RequantizeParams, input: &[i8], output: &mut [i8]) {
    assert_eq!(input.len(), output.len());
    for (out, &x) in output.iter_mut().zip(input) {
        let value = multiply_by_quantized_multiplier_with(
            x as i32 - params.input_zero_point,
            params.effective_scale_multiplier,
            params.effective_scale_shift,
            params.rounding,
        ) + params.output_zero_point;
        *out = saturate_s8(value);
    }
}

/// TFLM `reference_ops::Requantize` between int8 and int16 (QUANTIZE int8 → int16 and
/// int16 → int8, the edges of a 16x8 layer): the same arithmetic as [`requantize_s8`] with the
/// output clamped to its own type. Prepared by [`prepare_requantize`] with the multiplier
/// `double(in_s) / double(out_s)`.
///
/// # Panics
/// If the slices differ in length.
pub fn requantize_int<I: Copy + Into<i32>, O: TryFrom<i32> + Bounded>(
    params: &RequantizeParams,
    input: &[I],
    output: &mut [O],
) {
    assert_eq!(input.len(), output.len());
    for (out, &x) in output.iter_mut().zip(input) {
        let value = multiply_by_quantized_multiplier_with(
            x.into() - params.input_zero_point,
            params.effective_scale_multiplier,
            params.effective_scale_shift,
            params.rounding,
        ) + params.output_zero_point;
        *out = O::saturate(value);
    }
}

/// The integer storage types a requantize writes: saturating conversion from int32.
pub trait Bounded: Sized {
    fn saturate(x: i32) -> Self;
}

impl Bounded for i8 {
    fn saturate(x: i32) -> i8 {
        x.clamp(i8::MIN as i32, i8::MAX as i32) as i8
    }
}

impl Bounded for i16 {
    fn saturate(x: i32) -> i16 {
        x.clamp(i16::MIN as i32, i16::MAX as i32) as i16
    }
}

/// Prepares a requantize between integer tensors: validates the scales and that each zero point
/// fits its type (`bits` 8 or 16; int16 zero points must be 0, as the 16x8 kernels need).
pub fn prepare_requantize(
    input_scale: f32,
    input_zero_point: i32,
    input_bits: u32,
    output_scale: f32,
    output_zero_point: i32,
    output_bits: u32,
    rounding: Rounding,
) -> Result<RequantizeParams, KernelError> {
    let check = |tensor: &'static str, scale: f32, zero_point: i32, bits: u32| {
        crate::check_scale(tensor, scale)?;
        let ok = if bits == 8 { (i8::MIN as i32..=i8::MAX as i32).contains(&zero_point) } else { zero_point == 0 };
        if ok {
            Ok(())
        } else {
            Err(KernelError::InvalidZeroPoint { tensor, zero_point })
        }
    };
    check("input", input_scale, input_zero_point, input_bits)?;
    check("output", output_scale, output_zero_point, output_bits)?;
    let q = quantize_multiplier_with(input_scale as f64 / output_scale as f64, rounding)?;
    Ok(RequantizeParams {
        input_zero_point,
        output_zero_point,
        effective_scale_multiplier: q.multiplier,
        effective_scale_shift: q.shift,
        rounding,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // in (0.2, 10) → out (0.1, −5): q' = 2·(q − 10) − 5.
        let params = prepare_requantize_s8(QParamsS8::new(0.2, 10), QParamsS8::new(0.1, -5), Rounding::Double).unwrap();
        let mut out = [0i8; 4];
        requantize_s8(&params, &[10, 20, 0, 127], &mut out);
        assert_eq!(out, [-5, 15, -25, 127]);
        // Identity params are exact.
        let q = QParamsS8::new(0.037, 3);
        let params = prepare_requantize_s8(q, q, Rounding::Double).unwrap();
        let input: Vec<i8> = (i8::MIN..=i8::MAX).collect();
        let mut out = vec![0i8; 256];
        requantize_s8(&params, &input, &mut out);
        assert_eq!(out, input);
    }

    #[test]
    fn int8_to_int16_and_back() {
        // int8 (0.1, zp 5) → int16 (0.1 / 256, 0): q16 = 256 · (q8 − 5), saturated; and back.
        let up = prepare_requantize(0.1, 5, 8, 0.1 / 256.0, 0, 16, Rounding::Double).unwrap();
        let input: Vec<i8> = (i8::MIN..=i8::MAX).collect();
        let mut wide = vec![0i16; 256];
        requantize_int(&up, &input, &mut wide);
        assert!(wide.iter().zip(&input).all(|(&w, &x)| w as i32 == (256 * (x as i32 - 5)).max(-32768)));
        let down = prepare_requantize(0.1 / 256.0, 0, 16, 0.1, 5, 8, Rounding::Double).unwrap();
        let mut back = vec![0i8; 256];
        requantize_int(&down, &wide, &mut back);
        assert_eq!(back[5..], input[5..], "exact where int16 did not saturate");
        assert_eq!(back[0], -123);
        // Rounding half away from zero, then saturation to int8.
        let mut out = [0i8; 4];
        requantize_int(&down, &[128i16, -128, 32767, -32768], &mut out);
        assert_eq!(out, [6, 4, 127, -123]);
        assert!(prepare_requantize(0.1, 0, 8, 0.1, 3, 16, Rounding::Double).is_err());
        assert!(prepare_requantize(0.1, 200, 8, 0.1, 0, 16, Rounding::Double).is_err());
    }
}
