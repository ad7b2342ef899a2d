//! MAXIMUM and MINIMUM on int8: the larger (smaller) of two stored values, with numpy broadcasting.
//!
//! Mirrors `micro/kernels/maximum_minimum.cc` and `reference_ops::MaximumMinimumBroadcastSlow`:
//! TFLM registers no Prepare and compares the raw int8 values, so the inputs and the output must
//! share one scale and zero point (the TFLite converter's and tinyq's quantization ensure it);
//! inputs of the same shape take the elementwise loop, others `BroadcastBinaryOpSimple` (up to
//! five dimensions).

use crate::BroadcastShapes;

/// TFLM's `MaximumOp` (`which = Maximum`) or `MinimumOp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MaximumMinimum {
    Maximum,
    Minimum,
}

impl MaximumMinimum {
    #[inline]
    fn op(self, a: i8, b: i8) -> i8 {
        match self {
            MaximumMinimum::Maximum => a.max(b),
            MaximumMinimum::Minimum => a.min(b),
        }
    }
}

/// The elementwise path: both inputs have the output's shape.
///
/// # Panics
/// If the slices differ in length.
pub fn maximum_minimum_s8(which: MaximumMinimum, input1: &[i8], input2: &[i8], output: &mut [i8]) {
    assert_eq!(input1.len(), output.len());
    assert_eq!(input2.len(), output.len());
    for ((o, &a), &b) in output.iter_mut().zip(input1).zip(input2) {
        *o = which.op(a, b);
    }
}

/// The broadcast path (`BroadcastBinaryOpSimple`).
///
/// # Panics
/// If a slice length disagrees with `shapes`.
pub fn broadcast_maximum_minimum_s8(
    which: MaximumMinimum,
    shapes: &BroadcastShapes,
    input1: &[i8],
    input2: &[i8],
    output: &mut [i8],
) {
    assert_eq!(input1.len(), shapes.input1_size());
    assert_eq!(input2.len(), shapes.input2_size());
    assert_eq!(output.len(), shapes.output_size());
    shapes.for_each(|i1, i2, o| output[o] = which.op(input1[i1], input2[i2]));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elementwise_and_broadcast() {
        let mut out = [0i8; 3];
        maximum_minimum_s8(MaximumMinimum::Maximum, &[-128, 5, 127], &[0, 4, -1], &mut out);
        assert_eq!(out, [0, 5, 127]);
        maximum_minimum_s8(MaximumMinimum::Minimum, &[-128, 5, 127], &[0, 4, -1], &mut out);
        assert_eq!(out, [-128, 4, -1]);
        // [2, 1] against [3]: a column against a row.
        let shapes = BroadcastShapes::new(&[2, 1], &[3]).unwrap();
        let mut out = [0i8; 6];
        broadcast_maximum_minimum_s8(MaximumMinimum::Maximum, &shapes, &[0, 10], &[-5, 5, 15], &mut out);
        assert_eq!(out, [0, 5, 15, 10, 10, 15]);
    }
}
