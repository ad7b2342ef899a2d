//! SUB of two int8 tensors, elementwise or broadcast.
//!
//! Mirrors `reference/sub.h` (`SubElementwise`, `BroadcastQuantSubSlow`), prepared as in
//! `micro/kernels/sub_common.cc`: the same three multipliers and left shift 20 as ADD, with the
//! two rescaled inputs subtracted.

use crate::add::{prepare_add, rescale_output, scaled_inputs, AddParams};
use crate::fixedpoint::{FusedActivation, Rounding};
use crate::shape::BroadcastShapes;
use crate::{KernelError, QParamsS8};

/// Computes the SUB parameters (identical to ADD's).
pub fn prepare_sub(
    input1: QParamsS8,
    input2: QParamsS8,
    output: QParamsS8,
    activation: FusedActivation,
    rounding: Rounding,
) -> Result<AddParams, KernelError> {
    prepare_add(input1, input2, output, activation, rounding)
}

/// One element of TFLM's quantized SUB.
#[inline]
pub fn sub_func_s8(params: &AddParams, x: i8, y: i8) -> i8 {
    let (a, b) = scaled_inputs(params, x, y);
    rescale_output(params, a.wrapping_sub(b))
}

/// Same-shaped SUB.
///
/// # Panics
/// If the three slices differ in length.
pub fn sub_s8(params: &AddParams, input1: &[i8], input2: &[i8], output: &mut [i8]) {
    assert!(input1.len() == output.len() && input2.len() == output.len());
    for ((o, &x), &y) in output.iter_mut().zip(input1).zip(input2) {
        *o = sub_func_s8(params, x, y);
    }
}

/// Broadcast SUB.
///
/// # Panics
/// If a slice length disagrees with `shapes`.
pub fn broadcast_sub_s8(params: &AddParams, shapes: &BroadcastShapes, input1: &[i8], input2: &[i8], output: &mut [i8]) {
    assert_eq!(input1.len(), shapes.input1_size());
    assert_eq!(input2.len(), shapes.input2_size());
    assert_eq!(output.len(), shapes.output_size());
    shapes.for_each(|i1, i2, o| output[o] = sub_func_s8(params, input1[i1], input2[i2]));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // 0.5·(10 − 2) − 0.25·(−4 + 8) = 4 − 1 = 3 → /0.5 = 6, + 1 = 7.
        let params = prepare_sub(
            QParamsS8::new(0.5, 2),
            QParamsS8::new(0.25, -8),
            QParamsS8::new(0.5, 1),
            FusedActivation::None,
            Rounding::Double,
        )
        .unwrap();
        let mut out = [0i8; 2];
        sub_s8(&params, &[10, -128], &[-4, 127], &mut out);
        assert_eq!(out, [7, -128]);
    }
}
