//! MAX_POOL_2D on int8 or int16 (`reference/integer_ops/pooling.h::MaxPool`, both overloads): the
//! maximum raw value over the in-image taps, clamped to the activation range.

use crate::pooling::{for_each_window, PoolParams};
use crate::QuantizedInt;

pub use crate::pooling::{prepare_pool as prepare_max_pool, prepare_pool as prepare_max_pool_s8, PoolOptions};

/// TFLM `reference_integer_ops::MaxPool` (int8 and int16).
///
/// # Panics
/// If a slice length disagrees with `params`.
pub fn max_pool<T: QuantizedInt>(params: &PoolParams, input: &[T], output: &mut [T]) {
    assert_eq!(input.len(), params.input_shape.iter().product::<usize>());
    assert_eq!(output.len(), params.output_shape.iter().product::<usize>());
    for_each_window(params, |out_index, taps| {
        let max: i32 = taps.map(|i| input[i]).fold(T::MIN, T::max).into();
        output[out_index] = T::saturate(max.clamp(params.quantized_activation_min, params.quantized_activation_max));
    });
}

/// The int8 name (the same generic function).
pub use self::max_pool as max_pool_s8;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixedpoint::FusedActivation;
    use crate::padding::Padding;
    use crate::QParamsS8;

    /// A 2x2 window.
    fn options_2x2(
        padding: Padding,
        [stride_height, stride_width]: [usize; 2],
        activation: FusedActivation,
    ) -> PoolOptions {
        PoolOptions { padding, stride_height, stride_width, filter_height: 2, filter_width: 2, activation }
    }

    #[test]
    fn max_with_same_padding_and_relu() {
        let q = QParamsS8::new(0.1, -3);
        let options = options_2x2(Padding::Same, [2, 2], FusedActivation::Relu);
        // 3x3 → 2x2; windows {0,1,3,4}, {2,5}, {6,7}, {8}.
        let params = prepare_max_pool_s8([1, 3, 3, 1], &options, q, q).unwrap();
        assert_eq!(params.output_shape, [1, 2, 2, 1]);
        let mut out = [0i8; 4];
        max_pool_s8(&params, &[1, 9, -5, 4, 2, -7, -9, -8, 6], &mut out);
        assert_eq!(out, [9, -3, -3, 6]); // relu floor is the zero point −3
    }

    #[test]
    fn int16_max_with_valid_padding_and_relu6() {
        let q = crate::QParamsS16::new(0.001);
        let options = options_2x2(Padding::Valid, [1, 2], FusedActivation::Relu6);
        // 2x4 → 1x2; windows {0,1,4,5}, {2,3,6,7}; ReLU6 clamps to [0, 6000].
        let params = prepare_max_pool([1, 2, 4, 1], &options, q, q).unwrap();
        assert_eq!(params.output_shape, [1, 1, 2, 1]);
        let mut out = [0i16; 2];
        max_pool(&params, &[-300, 1200, -5, 32767, 900, -32768, -7, 7000], &mut out);
        assert_eq!(out, [1200, 6000]);
        max_pool(&params, &[-300, -1200, -5, -1, -900, -32768, -7, -2], &mut out);
        assert_eq!(out, [0, 0]);
        assert!(prepare_max_pool([1, 2, 4, 1], &options, q, crate::QParamsS16::new(0.002)).is_err());
    }
}
