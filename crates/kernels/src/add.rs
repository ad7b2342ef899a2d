//! ADD of two int8 or two int16 tensors, elementwise or broadcast.
//!
//! Mirrors `reference/integer_ops/add.h` (`AddFunc`, `AddElementwise`, `BroadcastAdd6DSlow`) for
//! int8 and `reference/add.h` (`AddGeneralParamScale` → `AddElementwise<int16_t>`, the
//! small-integer `BroadcastAdd6DSlow<int16_t>`) for int16, prepared as in
//! `micro/kernels/add_common.cc`: both inputs are shifted left by 20 bits (15 for an int16
//! output), rescaled to the common scale `2 · max(s1, s2)`, added, then rescaled to the output.
//! TFLM's `add.cc` always takes the general-scale int16 path (`pot_scale = false`), whatever the
//! `pot_scale_int16` option says. The per-element arithmetic is the same for both types; only the
//! left shift and the clamp range differ.

use crate::fixedpoint::{
    multiply_by_quantized_multiplier_smaller_than_one_exp, quantize_multiplier_smaller_than_one_exp, FusedActivation,
    Rounding,
};
use crate::shape::BroadcastShapes;
use crate::{ActivationQParams, KernelError, QParamsS8, QuantizedInt};

/// The int8 input left shift.
pub const ADD_LEFT_SHIFT_S8: i32 = 20;
/// The int16 input left shift (`add_common.cc`: 15 when the output is int16).
pub const ADD_LEFT_SHIFT_S16: i32 = 15;

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

/// Computes the ADD parameters for int8 (left shift 20) or int16 (left shift 15) tensors. Fails
/// when `2 · max(s1, s2) / (2^left_shift · s_out)` is not below 1, where TFLM would abort: for
/// int16 the output scale must exceed `max(s1, s2) / 16384`. int16 zero points must be 0 (LiteRT's
/// `add.cc` checks it; TFLM would use them as offsets).
pub fn prepare_add<Q: ActivationQParams>(
    input1: Q,
    input2: Q,
    output: Q,
    activation: FusedActivation,
    rounding: Rounding,
) -> Result<AddParams, KernelError> {
    input1.validate("input1")?;
    input2.validate("input2")?;
    output.validate("output")?;
    let left_shift = if Q::Int::BITS == 16 { ADD_LEFT_SHIFT_S16 } else { ADD_LEFT_SHIFT_S8 };
    let qparams = [input1, input2, output].map(ActivationQParams::scale_and_zero_point);
    general_add_params(qparams, left_shift, output.activation_range(activation), rounding)
}

/// `CalculateOpDataAdd`'s general quantized path for `[input1, input2, output]`.
fn general_add_params(
    [input1, input2, output]: [QParamsS8; 3],
    left_shift: i32,
    (act_min, act_max): (i32, i32),
    rounding: Rounding,
) -> Result<AddParams, KernelError> {
    let twice_max_input_scale = 2.0 * input1.scale.max(input2.scale) as f64;
    let real_input1_multiplier = input1.scale as f64 / twice_max_input_scale;
    let real_input2_multiplier = input2.scale as f64 / twice_max_input_scale;
    let real_output_multiplier = twice_max_input_scale / ((1i64 << left_shift) as f64 * output.scale as f64);
    let q1 = quantize_multiplier_smaller_than_one_exp(real_input1_multiplier, rounding)?;
    let q2 = quantize_multiplier_smaller_than_one_exp(real_input2_multiplier, rounding)?;
    let qo = quantize_multiplier_smaller_than_one_exp(real_output_multiplier, rounding)?;
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

/// Each input rescaled to the common `2 · max(s1, s2) / 2^left_shift` scale (shared with SUB).
#[inline]
pub(crate) fn scaled_inputs<T: QuantizedInt>(params: &AddParams, x: T, y: T) -> (i32, i32) {
    let shifted_input1 = (params.input1_offset + x.into()) * (1 << params.left_shift);
    let shifted_input2 = (params.input2_offset + y.into()) * (1 << params.left_shift);
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
pub(crate) fn rescale_output<T: QuantizedInt>(params: &AddParams, raw: i32) -> T {
    let raw_output = multiply_by_quantized_multiplier_smaller_than_one_exp(
        raw,
        params.output_multiplier,
        params.output_shift,
        params.rounding,
    ) + params.output_offset;
    T::saturate(raw_output.clamp(params.quantized_activation_min, params.quantized_activation_max))
}

/// One pair of elements: TFLM `reference_integer_ops::AddFunc` (int8), the body of
/// `reference_ops::AddElementwise<int16_t>` (int16).
#[inline]
pub fn add_func<T: QuantizedInt>(params: &AddParams, x: T, y: T) -> T {
    let (a, b) = scaled_inputs(params, x, y);
    rescale_output(params, a.wrapping_add(b))
}

/// Same-shaped inputs: TFLM `reference_integer_ops::AddElementwise` (int8),
/// `reference_ops::AddGeneralParamScale` (int16).
///
/// # Panics
/// If the three slices differ in length.
pub fn add<T: QuantizedInt>(params: &AddParams, input1: &[T], input2: &[T], output: &mut [T]) {
    assert!(input1.len() == output.len() && input2.len() == output.len());
    for ((o, &x), &y) in output.iter_mut().zip(input1).zip(input2) {
        *o = add_func(params, x, y);
    }
}

/// TFLM `BroadcastAdd6DSlow` (`reference_integer_ops` for int8, the small-integer
/// `reference_ops` overload for int16).
///
/// # Panics
/// If a slice length disagrees with `shapes`.
pub fn broadcast_add<T: QuantizedInt>(
    params: &AddParams,
    shapes: &BroadcastShapes,
    input1: &[T],
    input2: &[T],
    output: &mut [T],
) {
    assert_eq!(input1.len(), shapes.input1_size());
    assert_eq!(input2.len(), shapes.input2_size());
    assert_eq!(output.len(), shapes.output_size());
    shapes.for_each(|i1, i2, o| output[o] = add_func(params, input1[i1], input2[i2]));
}

/// The int8 names (the same generic functions).
pub use self::{add as add_s8, add_func as add_func_s8, broadcast_add as broadcast_add_s8};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::QParamsS16;

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

    #[test]
    fn int16_known_values() {
        // Equal scales 0.5: multipliers 0.5 (2^30, shift 0) each; output 2·0.5/(2^15·0.25) = 2^-13.
        let q = QParamsS16::new(0.5);
        let o = QParamsS16::new(0.25);
        let params = prepare_add(q, q, o, FusedActivation::None, Rounding::Double).unwrap();
        assert_eq!(params.left_shift, 15);
        assert_eq!((params.input1_multiplier, params.input1_shift), (1 << 30, 0));
        assert_eq!((params.output_multiplier, params.output_shift), (1 << 30, -12));
        // 0.5·(100 + 7) = 53.5 → /0.25 = 214; 0.5·(−3 + 0) → −6; saturation at both ends.
        let mut out = [0i16; 4];
        add(&params, &[100, -3, 30000, -30000], &[7, 0, 30000, -30000], &mut out);
        assert_eq!(out, [214, -6, i16::MAX, i16::MIN]);
        // 0.5·1 / 0.25 = 2; 0.5·(−1)/0.25 = −2 exactly; (1 + 0)·0.5/0.25 = 2.
        add(&params, &[1, -1, 1, 0], &[0, 0, 1, 1], &mut out);
        assert_eq!(out, [2, -2, 4, 2]);
    }

    #[test]
    fn int16_relu6_and_broadcast() {
        // Scale 0.001: ReLU6 clamps to [0, 6000].
        let q = QParamsS16::new(0.001);
        let params = prepare_add(q, q, q, FusedActivation::Relu6, Rounding::Double).unwrap();
        assert_eq!((params.quantized_activation_min, params.quantized_activation_max), (0, 6000));
        let shapes = BroadcastShapes::new(&[2, 2], &[2]).unwrap();
        let mut out = [0i16; 4];
        broadcast_add(&params, &shapes, &[1000, 2000, 5000, -4000], &[1500, -3000], &mut out);
        assert_eq!(out, [2500, 0, 6000, 0]);
    }

    #[test]
    fn int16_close_to_float() {
        let (a, b, o) = (QParamsS16::new(3.1e-4), QParamsS16::new(1.7e-4), QParamsS16::new(4.4e-4));
        let params = prepare_add(a, b, o, FusedActivation::None, Rounding::Double).unwrap();
        for x in (i16::MIN..=i16::MAX).step_by(97) {
            for y in (i16::MIN..=i16::MAX).step_by(1013) {
                let real = x as f64 * a.scale as f64 + y as f64 * b.scale as f64;
                let expected = (real / o.scale as f64).clamp(-32768.0, 32767.0);
                let got = add_func(&params, x, y) as f64;
                assert!((got - expected).abs() <= 1.0, "x={x} y={y} got={got} expected={expected}");
            }
        }
    }

    #[test]
    fn int16_refusals() {
        let q = QParamsS16::new(1.0);
        // The output scale must exceed max(s1, s2) / 2^14.
        assert!(prepare_add(q, q, QParamsS16::new(1.0 / 16384.0), FusedActivation::None, Rounding::Double).is_err());
        assert!(prepare_add(q, q, QParamsS16::new(1.0 / 16000.0), FusedActivation::None, Rounding::Double).is_ok());
        let nonzero = QParamsS16 { scale: 1.0, zero_point: 3 };
        assert!(prepare_add(nonzero, q, q, FusedActivation::None, Rounding::Double).is_err());
        assert!(prepare_add(q, q, nonzero, FusedActivation::None, Rounding::Double).is_err());
    }
}
