//! AVERAGE_POOL_2D on int8 or int16 (`reference/integer_ops/pooling.h::AveragePool`, both
//! overloads).
//!
//! Sums raw values in an int32 over the in-image taps only and divides by their count (padding is
//! not counted), rounding half away from zero; no rescale because input and output share params.

use crate::pooling::{for_each_window, PoolParams};
use crate::QuantizedInt;

pub use crate::pooling::{prepare_pool as prepare_average_pool, prepare_pool as prepare_average_pool_s8, PoolOptions};

/// The int8 name (the same generic function).
pub use self::average_pool as average_pool_s8;

/// TFLM `reference_integer_ops::AveragePool` (int8 and int16).
///
/// # Panics
/// If a slice length disagrees with `params`.
pub fn average_pool<T: QuantizedInt>(params: &PoolParams, input: &[T], output: &mut [T]) {
    assert_eq!(input.len(), params.input_shape.iter().product::<usize>());
    assert_eq!(output.len(), params.output_shape.iter().product::<usize>());
    for_each_window(params, |out_index, taps| {
        let mut acc: i32 = 0;
        let mut filter_count: i32 = 0;
        for i in taps {
            acc = acc.wrapping_add(input[i].into());
            filter_count += 1;
        }
        let average =
            if acc > 0 { (acc + filter_count / 2) / filter_count } else { (acc - filter_count / 2) / filter_count };
        output[out_index] =
            T::saturate(average.clamp(params.quantized_activation_min, params.quantized_activation_max));
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixedpoint::FusedActivation;
    use crate::padding::Padding;
    use crate::QParamsS8;

    fn options(padding: Padding, k: usize, s: usize) -> PoolOptions {
        PoolOptions {
            padding,
            stride_height: s,
            stride_width: s,
            filter_height: k,
            filter_width: k,
            activation: FusedActivation::None,
        }
    }

    #[test]
    fn rounds_half_away_and_excludes_padding() {
        let q = QParamsS8::new(0.1, 0);
        // 2x2 VALID over [1, 2; 2, 0] → 5/4 = 1.25 → 1; over [−1, −2; −2, −1] → −1.5 → −2.
        let params = prepare_average_pool_s8([1, 2, 2, 2], &options(Padding::Valid, 2, 2), q, q).unwrap();
        let mut out = [0i8; 2];
        average_pool_s8(&params, &[1, -1, 2, -2, 2, -2, 0, -1], &mut out);
        assert_eq!(out, [1, -2]);
        // 3x3 SAME on a 2x2 image of 4s: every window averages only real pixels → 4.
        let params = prepare_average_pool_s8([1, 2, 2, 1], &options(Padding::Same, 3, 1), q, q).unwrap();
        let mut out = [0i8; 4];
        average_pool_s8(&params, &[4, 4, 4, 4], &mut out);
        assert_eq!(out, [4; 4]);
        // A 1x2 window: 2.5 → 3 and −2.5 → −3.
        let mut o = options(Padding::Valid, 1, 1);
        o.filter_width = 2;
        let params = prepare_average_pool_s8([1, 1, 2, 1], &o, q, q).unwrap();
        let mut out = [0i8; 1];
        average_pool_s8(&params, &[2, 3], &mut out);
        assert_eq!(out, [3]);
        average_pool_s8(&params, &[-2, -3], &mut out);
        assert_eq!(out, [-3]);
    }

    #[test]
    fn requires_equal_params() {
        let q = QParamsS8::new(0.1, 0);
        let o = options(Padding::Valid, 2, 2);
        assert!(prepare_average_pool_s8([1, 2, 2, 1], &o, q, QParamsS8::new(0.2, 0)).is_err());
        assert!(prepare_average_pool_s8([1, 2, 2, 1], &o, q, QParamsS8::new(0.1, 1)).is_err());
        assert!(prepare_average_pool_s8([1, 1, 1, 1], &o, q, q).is_err());
    }

    #[test]
    fn int16_rounds_half_away_and_excludes_padding() {
        let q = crate::conv16::QParamsS16::new(0.0001);
        // 2x2 VALID: (30000 + 30000 + 30001 + 30000) / 4 = 30000.25 → 30000, no int16 overflow in
        // the int32 sum; (−3 − 2 − 2 − 3) / 4 = −2.5 → −3.
        let params = prepare_average_pool([1, 2, 2, 2], &options(Padding::Valid, 2, 2), q, q).unwrap();
        let mut out = [0i16; 2];
        average_pool(&params, &[30000, -3, 30000, -2, 30001, -2, 30000, -3], &mut out);
        assert_eq!(out, [30000, -3]);
        // 3x3 SAME, stride 2 on 3x3: output 2x2, one padding row/column before, so every window
        // holds 4 real pixels: {1,2,4,5} → 3, {2,3,5,6} → 4, {4,5,7,8} → 6,
        // {5,6,8,−32768} → −32749/4 = −8187.25 → −8187.
        let params = prepare_average_pool([1, 3, 3, 1], &options(Padding::Same, 3, 2), q, q).unwrap();
        assert_eq!(params.output_shape, [1, 2, 2, 1]);
        let mut out = [0i16; 4];
        average_pool(&params, &[1, 2, 3, 4, 5, 6, 7, 8, -32768], &mut out);
        assert_eq!(out, [3, 4, 6, -8187]);
    }
}
