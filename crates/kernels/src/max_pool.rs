//! MAX_POOL_2D on int8 (`reference/integer_ops/pooling.h::MaxPool`): the maximum raw value over
//! the in-image taps, clamped to the activation range.

use crate::pooling::{for_each_window, PoolParams};

pub use crate::pooling::{prepare_pool_s8 as prepare_max_pool_s8, PoolOptions};

/// TFLM `reference_integer_ops::MaxPool` for int8.
///
/// # Panics
/// If a slice length disagrees with `params`.
pub fn max_pool_s8(params: &PoolParams, input: &[i8], output: &mut [i8]) {
    assert_eq!(input.len(), params.input_shape.iter().product::<usize>());
    assert_eq!(output.len(), params.output_shape.iter().product::<usize>());
    for_each_window(params, |out_index, taps| {
        let max = taps.map(|i| input[i]).fold(i8::MIN, i8::max) as i32;
        output[out_index] = max.clamp(params.quantized_activation_min, params.quantized_activation_max) as i8;
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixedpoint::FusedActivation;
    use crate::padding::Padding;
    use crate::QParamsS8;

    #[test]
    fn max_with_same_padding_and_relu() {
        let q = QParamsS8::new(0.1, -3);
        let options = PoolOptions {
            padding: Padding::Same,
            stride_height: 2,
            stride_width: 2,
            filter_height: 2,
            filter_width: 2,
            activation: FusedActivation::Relu,
        };
        // 3x3 → 2x2; windows {0,1,3,4}, {2,5}, {6,7}, {8}.
        let params = prepare_max_pool_s8([1, 3, 3, 1], &options, q, q).unwrap();
        assert_eq!(params.output_shape, [1, 2, 2, 1]);
        let mut out = [0i8; 4];
        max_pool_s8(&params, &[1, 9, -5, 4, 2, -7, -9, -8, 6], &mut out);
        assert_eq!(out, [9, -3, -3, 6]); // relu floor is the zero point −3
    }
}
