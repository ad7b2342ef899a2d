//! MUL of two int8 tensors, elementwise or broadcast.
//!
//! Mirrors `reference/integer_ops/mul.h` (`MulElementwise`, `BroadcastMul6DSlow`), prepared as in
//! `micro/kernels/mul_common.cc`: one multiplier for `double(s1) · double(s2) / double(s_out)`,
//! whose shift may be positive.

use crate::fixedpoint::{
    calculate_activation_range_quantized, multiply_by_quantized_multiplier_with, quantize_multiplier_with,
    FusedActivation, Rounding,
};
use crate::shape::BroadcastShapes;
use crate::{KernelError, QParamsS8};

/// TFLM `ArithmeticParams` as MUL fills them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MulParams {
    pub input1_offset: i32,
    pub input2_offset: i32,
    pub output_offset: i32,
    pub output_multiplier: i32,
    pub output_shift: i32,
    pub quantized_activation_min: i32,
    pub quantized_activation_max: i32,
    pub rounding: Rounding,
}

pub fn prepare_mul(
    input1: QParamsS8,
    input2: QParamsS8,
    output: QParamsS8,
    activation: FusedActivation,
    rounding: Rounding,
) -> Result<MulParams, KernelError> {
    input1.validate("input1")?;
    input2.validate("input2")?;
    output.validate("output")?;
    let real_multiplier = input1.scale as f64 * input2.scale as f64 / output.scale as f64;
    let q = quantize_multiplier_with(real_multiplier, rounding)?;
    let (act_min, act_max) = calculate_activation_range_quantized(activation, output);
    Ok(MulParams {
        input1_offset: -input1.zero_point,
        input2_offset: -input2.zero_point,
        output_offset: output.zero_point,
        output_multiplier: q.multiplier,
        output_shift: q.shift,
        quantized_activation_min: act_min,
        quantized_activation_max: act_max,
        rounding,
    })
}

/// One element of TFLM's int8 MUL.
#[inline]
pub fn mul_func_s8(params: &MulParams, x: i8, y: i8) -> i8 {
    let input1_val = params.input1_offset + x as i32;
    let input2_val = params.input2_offset + y as i32;
    let unclamped = params.output_offset
        + multiply_by_quantized_multiplier_with(
            input1_val * input2_val,
            params.output_multiplier,
            params.output_shift,
            params.rounding,
        );
    unclamped.clamp(params.quantized_activation_min, params.quantized_activation_max) as i8
}

/// TFLM `reference_integer_ops::MulElementwise`.
///
/// # Panics
/// If the three slices differ in length.
pub fn mul_s8(params: &MulParams, input1: &[i8], input2: &[i8], output: &mut [i8]) {
    assert!(input1.len() == output.len() && input2.len() == output.len());
    for ((o, &x), &y) in output.iter_mut().zip(input1).zip(input2) {
        *o = mul_func_s8(params, x, y);
    }
}

/// TFLM `reference_integer_ops::BroadcastMul6DSlow`.
///
/// # Panics
/// If a slice length disagrees with `shapes`.
pub fn broadcast_mul_s8(params: &MulParams, shapes: &BroadcastShapes, input1: &[i8], input2: &[i8], output: &mut [i8]) {
    assert_eq!(input1.len(), shapes.input1_size());
    assert_eq!(input2.len(), shapes.input2_size());
    assert_eq!(output.len(), shapes.output_size());
    shapes.for_each(|i1, i2, o| output[o] = mul_func_s8(params, input1[i1], input2[i2]));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // (0.5·(6 − 2)) · (0.25·(12 − 4)) = 2 · 2 = 4 → /0.1 = 40, + zp −10 = 30.
        let params = prepare_mul(
            QParamsS8::new(0.5, 2),
            QParamsS8::new(0.25, 4),
            QParamsS8::new(0.1, -10),
            FusedActivation::None,
            Rounding::Double,
        )
        .unwrap();
        assert!(params.output_shift > 0);
        let mut out = [0i8; 3];
        mul_s8(&params, &[6, 127, -128], &[12, 127, 127], &mut out);
        assert_eq!(out, [30, 127, -128]);
    }

    #[test]
    fn close_to_float() {
        let (a, b, o) = (QParamsS8::new(0.02, 3), QParamsS8::new(0.07, -20), QParamsS8::new(0.03, 1));
        let params = prepare_mul(a, b, o, FusedActivation::None, Rounding::Double).unwrap();
        for x in i8::MIN..=i8::MAX {
            for y in (i8::MIN..=i8::MAX).step_by(5) {
                let real = (x as i32 - 3) as f64 * 0.02f32 as f64 * (y as i32 + 20) as f64 * 0.07f32 as f64;
                let expected = (real / 0.03f32 as f64 + 1.0).clamp(-128.0, 127.0);
                let got = mul_func_s8(&params, x, y) as f64;
                assert!((got - expected).abs() <= 1.0, "x={x} y={y} got={got} expected={expected}");
            }
        }
        let shapes = BroadcastShapes::new(&[3], &[1]).unwrap();
        let mut out = [0i8; 3];
        broadcast_mul_s8(&params, &shapes, &[3, 4, 5], &[-20], &mut out);
        assert_eq!(out, [1, 1, 1]);
    }
}
