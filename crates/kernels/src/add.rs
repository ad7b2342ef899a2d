//! ADD of two int8 tensors, elementwise or broadcast.
//!
//! Mirrors `reference/integer_ops/add.h` (`AddFunc`, `AddElementwise`, `BroadcastAdd6DSlow`),
//! prepared as in `micro/kernels/add_common.cc`: both inputs are shifted left by 20 bits, rescaled
//! to the common scale `2 · max(s1, s2)`, added, then rescaled to the output.

use crate::fixedpoint::{
    calculate_activation_range_quantized, multiply_by_quantized_multiplier_smaller_than_one_exp,
    quantize_multiplier_smaller_than_one_exp, FusedActivation, Rounding,
};
use crate::shape::BroadcastShapes;
use crate::{saturate_s8, KernelError, QParamsS8};

/// The int8 input left shift (TFLM uses 15 for int16).
pub const ADD_LEFT_SHIFT_S8: i32 = 20;

/// TFLM `ArithmeticParams` as ADD and SUB fill them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AddParams {
    pub input1_offset: i32,
    pub input2_offset: i32,
    pub output_offset: i32,
    pub left_shift: i32,
    pub input1_multiplier: i32,
    pub input1_shift: i32,
    pub input2_multiplier: i32,
    pub input2_shift: i32,
    pub output_multiplier: i32,
    pub output_shift: i32,
    pub quantized_activation_min: i32,
    pub quantized_activation_max: i32,
    pub rounding: Rounding,
}

/// Computes the ADD parameters. Fails when `2 · max(s1, s2) / (2^20 · s_out)` is not below 1,
/// where TFLM would abort.
pub fn prepare_add(
    input1: QParamsS8,
    input2: QParamsS8,
    output: QParamsS8,
    activation: FusedActivation,
    rounding: Rounding,
) -> Result<AddParams, KernelError> {
    input1.validate("input1")?;
    input2.validate("input2")?;
    output.validate("output")?;
    let left_shift = ADD_LEFT_SHIFT_S8;
    let twice_max_input_scale = 2.0 * input1.scale.max(input2.scale) as f64;
    let real_input1_multiplier = input1.scale as f64 / twice_max_input_scale;
    let real_input2_multiplier = input2.scale as f64 / twice_max_input_scale;
    let real_output_multiplier = twice_max_input_scale / ((1i64 << left_shift) as f64 * output.scale as f64);
    let q1 = quantize_multiplier_smaller_than_one_exp(real_input1_multiplier, rounding)?;
    let q2 = quantize_multiplier_smaller_than_one_exp(real_input2_multiplier, rounding)?;
    let qo = quantize_multiplier_smaller_than_one_exp(real_output_multiplier, rounding)?;
    let (act_min, act_max) = calculate_activation_range_quantized(activation, output);
    Ok(AddParams {
        input1_offset: -input1.zero_point,
        input2_offset: -input2.zero_point,
        output_offset: output.zero_point,
        left_shift,
        input1_multiplier: q1.multiplier,
        input1_shift: q1.shift,
        input2_multiplier: q2.multiplier,
        input2_shift: q2.shift,
        output_multiplier: qo.multiplier,
        output_shift: qo.shift,
        quantized_activation_min: act_min,
        quantized_activation_max: act_max,
        rounding,
    })
}

/// Each input rescaled to the common `2 · max(s1, s2) / 2^20` scale (shared with SUB).
#[inline]
pub(crate) fn scaled_inputs(params: &AddParams, x: i8, y: i8) -> (i32, i32) {
    let shifted_input1 = (params.input1_offset + x as i32) * (1 << params.left_shift);
    let shifted_input2 = (params.input2_offset + y as i32) * (1 << params.left_shift);
    (
        multiply_by_quantized_multiplier_smaller_than_one_exp(
            shifted_input1,
            params.input1_multiplier,
            params.input1_shift,
            params.rounding,
        ),
        multiply_by_quantized_multiplier_smaller_than_one_exp(
            shifted_input2,
            params.input2_multiplier,
            params.input2_shift,
            params.rounding,
        ),
    )
}

#[inline]
pub(crate) fn rescale_output(params: &AddParams, raw: i32) -> i8 {
    let raw_output = multiply_by_quantized_multiplier_smaller_than_one_exp(
        raw,
        params.output_multiplier,
        params.output_shift,
        params.rounding,
    ) + params.output_offset;
    saturate_s8(raw_output.clamp(params.quantized_activation_min, params.quantized_activation_max))
}

/// TFLM `reference_integer_ops::AddFunc` for one pair of elements.
#[inline]
pub fn add_func_s8(params: &AddParams, x: i8, y: i8) -> i8 {
    let (a, b) = scaled_inputs(params, x, y);
    rescale_output(params, a.wrapping_add(b))
}

/// TFLM `reference_integer_ops::AddElementwise` over same-shaped inputs.
///
/// # Panics
/// If the three slices differ in length.
pub fn add_s8(params: &AddParams, input1: &[i8], input2: &[i8], output: &mut [i8]) {
    assert!(input1.len() == output.len() && input2.len() == output.len());
    for ((o, &x), &y) in output.iter_mut().zip(input1).zip(input2) {
        *o = add_func_s8(params, x, y);
    }
}

/// TFLM `reference_integer_ops::BroadcastAdd6DSlow`.
///
/// # Panics
/// If a slice length disagrees with `shapes`.
pub fn broadcast_add_s8(params: &AddParams, shapes: &BroadcastShapes, input1: &[i8], input2: &[i8], output: &mut [i8]) {
    assert_eq!(input1.len(), shapes.input1_size());
    assert_eq!(input2.len(), shapes.input2_size());
    assert_eq!(output.len(), shapes.output_size());
    shapes.for_each(|i1, i2, o| output[o] = add_func_s8(params, input1[i1], input2[i2]));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn float_add(a: QParamsS8, b: QParamsS8, o: QParamsS8, x: i8, y: i8) -> f64 {
        let real =
            (x as i32 - a.zero_point) as f64 * a.scale as f64 + (y as i32 - b.zero_point) as f64 * b.scale as f64;
        (real / o.scale as f64 + o.zero_point as f64).clamp(-128.0, 127.0)
    }

    #[test]
    fn known_values() {
        // 0.5·(10 − 2) + 0.25·(−4 − (−8)) = 4 + 1 = 5 → /0.5 = 10, + zp 1 = 11.
        let (a, b, o) = (QParamsS8::new(0.5, 2), QParamsS8::new(0.25, -8), QParamsS8::new(0.5, 1));
        let params = prepare_add(a, b, o, FusedActivation::None, Rounding::Double).unwrap();
        assert_eq!((params.input1_multiplier, params.input1_shift), (1 << 30, 0));
        assert_eq!((params.input2_multiplier, params.input2_shift), (1 << 30, -1));
        let mut out = [0i8; 3];
        add_s8(&params, &[10, 127, -128], &[-4, 127, -128], &mut out);
        assert_eq!(out[0], 11);
        assert_eq!(out[1], 127); // saturates
        assert_eq!(out[2], -128);
    }

    #[test]
    fn close_to_float_for_all_pairs() {
        let (a, b, o) = (QParamsS8::new(0.037, -5), QParamsS8::new(0.011, 17), QParamsS8::new(0.05, 3));
        let params = prepare_add(a, b, o, FusedActivation::None, Rounding::Double).unwrap();
        for x in i8::MIN..=i8::MAX {
            for y in (i8::MIN..=i8::MAX).step_by(7) {
                let got = add_func_s8(&params, x, y) as f64;
                assert!((got - float_add(a, b, o, x, y)).abs() <= 1.0, "x={x} y={y} got={got}");
            }
        }
    }

    #[test]
    fn relu_and_broadcast() {
        let q = QParamsS8::new(1.0, 0);
        let params = prepare_add(q, q, q, FusedActivation::Relu, Rounding::Double).unwrap();
        let shapes = BroadcastShapes::new(&[2, 2], &[2]).unwrap();
        let mut out = [0i8; 4];
        broadcast_add_s8(&params, &shapes, &[1, 2, 3, 4], &[10, -10], &mut out);
        assert_eq!(out, [11, 0, 13, 0]);
    }

    #[test]
    fn rejects_output_scale_too_small() {
        let q = QParamsS8::new(1.0, 0);
        assert!(prepare_add(q, q, QParamsS8::new(1e-7, 0), FusedActivation::None, Rounding::Double).is_err());
        assert!(prepare_add(q, QParamsS8::new(0.0, 0), q, FusedActivation::None, Rounding::Double).is_err());
    }
}
