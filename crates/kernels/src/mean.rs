//! MEAN on int8 or int16 over any set of axes, and SUM on int8 (the same kernel without the
//! division).
//!
//! Mirrors `reference/reduce.h::QuantizedMeanOrSum<T, int32_t>` (mean branch; TFLM's
//! `EvalIntegerMean<int8_t>` and `EvalIntegerMean<int16_t>` take the same path), prepared as in
//! `micro/kernels/reduce_common.cc` (`PrepareMeanOrSumHelper`): raw values are summed in int32, the zero point times the
//! element count is subtracted, and one multiplier `(in_s / out_s) / N` is applied. TFLM folds `N`
//! into the multiplier at eval time; shapes are static here, so it is folded in prepare with the
//! same integer steps. The result is clamped to the type's range. TFLM asks nothing of the scales
//! (any ratio `in_s / out_s` becomes a multiplier) or zero points. Global average pooling in
//! current converter output is MEAN over `[1, 2]`. SUM (`EvalSumHelper`, `compute_sum = true`) is
//! the same sum rescaled by `in_s / out_s` alone.

use crate::fixedpoint::{multiply_by_quantized_multiplier_with, quantize_multiplier_with, Rounding};
use crate::shape::{next_index, resolve_axis, Dims, MAX_DIMS};
use crate::{ActivationQParams, KernelError, QuantizedInt};

/// Everything [`mean`] needs. The output holds the kept dimensions in row-major order, whether
/// or not the graph keeps the reduced ones as size 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MeanParams {
    pub input_zero_point: i32,
    pub output_zero_point: i32,
    /// For MEAN already divided by `num_elements_in_axis`.
    pub output_multiplier: i32,
    pub output_shift: i32,
    pub num_elements_in_axis: usize,
    pub input_shape: Dims,
    pub reduced: [bool; MAX_DIMS],
    pub rounding: Rounding,
}

impl MeanParams {
    pub fn output_size(&self) -> usize {
        self.input_shape.flat_size() / self.num_elements_in_axis.max(1)
    }
}

/// Validates an int8 or int16 MEAN and computes its parameters. `axes` may be negative and may
/// repeat. Any scales; int16 zero points must be 0 (tinyq's int16 convention; TFLM would apply
/// them as in the int8 case).
pub fn prepare_mean<Q: ActivationQParams>(
    input_shape: &[usize],
    axes: &[i32],
    input: Q,
    output: Q,
    rounding: Rounding,
) -> Result<MeanParams, KernelError> {
    prepare_mean_or_sum(input_shape, axes, input, output, rounding, false)
}

/// Validates an int8 SUM and computes its parameters ([`mean_s8`] then evaluates it): TFLM's
/// `QuantizedMeanOrSum` with `compute_sum`, one multiplier `in_s / out_s`.
pub fn prepare_sum_s8(
    input_shape: &[usize],
    axes: &[i32],
    input: crate::QParamsS8,
    output: crate::QParamsS8,
    rounding: Rounding,
) -> Result<MeanParams, KernelError> {
    prepare_mean_or_sum(input_shape, axes, input, output, rounding, true)
}

fn prepare_mean_or_sum<Q: ActivationQParams>(
    input_shape: &[usize],
    axes: &[i32],
    input: Q,
    output: Q,
    rounding: Rounding,
    compute_sum: bool,
) -> Result<MeanParams, KernelError> {
    let input = input.validate("input")?.scale_and_zero_point();
    let output = output.validate("output")?.scale_and_zero_point();
    let dims = Dims::new(input_shape)?;
    let mut reduced = [false; MAX_DIMS];
    for &axis in axes {
        reduced[resolve_axis(axis, dims.rank())?] = true;
    }
    let num_elements_in_axis: usize = (0..dims.rank()).filter(|&a| reduced[a]).map(|a| input_shape[a]).product();
    let q = quantize_multiplier_with(input.scale as f64 / output.scale as f64, rounding)?;
    let (mut multiplier, mut shift) = (q.multiplier, q.shift);
    if num_elements_in_axis > 0 && !compute_sum {
        let n = num_elements_in_axis as u64;
        // Shifting by at most 32 keeps `multiplier << shift` in i64, and `shift ≤ 31 + q.shift`
        // keeps the final shift ≥ −31 as MultiplyByQuantizedMultiplier requires.
        let extra_shift = (63 - n.leading_zeros() as i32).min(32).min(31 + q.shift);
        multiplier = (((q.multiplier as i64) << extra_shift) / n as i64) as i32;
        shift = q.shift - extra_shift;
    }
    Ok(MeanParams {
        input_zero_point: input.zero_point,
        output_zero_point: output.zero_point,
        output_multiplier: multiplier,
        output_shift: shift,
        num_elements_in_axis,
        input_shape: dims,
        reduced,
        rounding,
    })
}

/// The int8 names (the same generic functions); SUM evaluates as [`mean_s8`] too.
pub use self::{mean as mean_s8, mean as sum_s8, prepare_mean as prepare_mean_s8};

/// TFLM `reference_ops::QuantizedMeanOrSum<T, int32_t>` (mean) for int8 and int16.
///
/// # Panics
/// If a slice length disagrees with `params`.
pub fn mean<T: QuantizedInt>(params: &MeanParams, input: &[T], output: &mut [T]) {
    let shape = params.input_shape.as_slice();
    let rank = shape.len();
    assert_eq!(input.len(), params.input_shape.flat_size());
    assert_eq!(output.len(), params.output_size());
    if params.num_elements_in_axis == 0 || output.is_empty() {
        return;
    }
    let strides = params.input_shape.strides();
    let mut kept_dims = [1; MAX_DIMS];
    let mut kept_strides = [0; MAX_DIMS];
    let mut reduced_dims = [1; MAX_DIMS];
    let mut reduced_strides = [0; MAX_DIMS];
    let (mut n_kept, mut n_reduced) = (0, 0);
    for axis in 0..rank {
        if params.reduced[axis] {
            reduced_dims[n_reduced] = shape[axis];
            reduced_strides[n_reduced] = strides[axis];
            n_reduced += 1;
        } else {
            kept_dims[n_kept] = shape[axis];
            kept_strides[n_kept] = strides[axis];
            n_kept += 1;
        }
    }
    let zero_point_sum = params.input_zero_point.wrapping_mul(params.num_elements_in_axis as i32);
    let mut kept_index = [0; MAX_DIMS];
    for out in output.iter_mut() {
        let base: usize = (0..n_kept).map(|a| kept_index[a] * kept_strides[a]).sum();
        let mut reduced_index = [0; MAX_DIMS];
        let mut sum: i32 = 0;
        loop {
            let offset: usize = (0..n_reduced).map(|a| reduced_index[a] * reduced_strides[a]).sum();
            sum = sum.wrapping_add(input[base + offset].into());
            if !next_index(&mut reduced_index[..n_reduced], &reduced_dims[..n_reduced]) {
                break;
            }
        }
        let shifted_sum = sum.wrapping_sub(zero_point_sum);
        let value = multiply_by_quantized_multiplier_with(
            shifted_sum,
            params.output_multiplier,
            params.output_shift,
            params.rounding,
        )
        .wrapping_add(params.output_zero_point);
        *out = T::saturate(value);
        next_index(&mut kept_index[..n_kept], &kept_dims[..n_kept]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{QParamsS16, QParamsS8};

    #[test]
    fn sum_skips_the_division() {
        // Sum over axis 1 of [[1, 2, 3], [4, 5, 6]] with zero point 1: (0+1+2, 3+4+5) = (3, 12),
        // times in_s / out_s = 0.5, plus the output zero point −10.
        let (input, output) = (QParamsS8::new(0.1, 1), QParamsS8::new(0.2, -10));
        let p = prepare_sum_s8(&[2, 3], &[1], input, output, Rounding::Double).unwrap();
        let mut out = [0i8; 2];
        sum_s8(&p, &[1i8, 2, 3, 4, 5, 6], &mut out);
        assert_eq!(out, [-8, -4]);
    }

    #[test]
    fn global_average_by_hand() {
        // [1, 2, 2, 2] NHWC, mean over H and W: channel 0 = [1, 2, 3, 4], channel 1 = [−8, 0, 0, 1].
        // Same params (scale 0.5, zp 0): 10/4 = 2.5 → 3 ; −7/4 = −1.75 → −2.
        let q = QParamsS8::new(0.5, 0);
        let params = prepare_mean_s8(&[1, 2, 2, 2], &[1, 2], q, q, Rounding::Double).unwrap();
        assert_eq!(params.output_size(), 2);
        let mut out = [0i8; 2];
        mean_s8(&params, &[1, -8, 2, 0, 3, 0, 4, 1], &mut out);
        assert_eq!(out, [3, -2]);
    }

    #[test]
    fn zero_points_and_rescale() {
        // Input zp 10, scale 0.1; output zp −5, scale 0.2. Row [20, 30, 40] → real [1, 2, 3] →
        // mean 2 → /0.2 = 10 → + (−5) = 5.
        let params =
            prepare_mean_s8(&[2, 3], &[-1], QParamsS8::new(0.1, 10), QParamsS8::new(0.2, -5), Rounding::Double)
                .unwrap();
        let mut out = [0i8; 2];
        mean_s8(&params, &[20, 30, 40, 10, 10, 10], &mut out);
        assert_eq!(out, [5, -5]);
    }

    #[test]
    fn non_contiguous_axes_match_float_mean() {
        let shape = [3, 4, 5];
        let input: Vec<i8> = (0..60).map(|i| ((i * 37) % 256) as u8 as i8).collect();
        let q = QParamsS8::new(0.05, -7);
        let params = prepare_mean_s8(&shape, &[0, 2], q, q, Rounding::Double).unwrap();
        let mut out = [0i8; 4];
        mean_s8(&params, &input, &mut out);
        for (j, &got) in out.iter().enumerate() {
            let sum: i32 =
                (0..3).flat_map(|i| (0..5).map(move |k| (i, k))).map(|(i, k)| input[i * 20 + j * 5 + k] as i32).sum();
            let expected = ((sum + 7 * 15) as f64 / 15.0).round() - 7.0;
            assert!((got as f64 - expected).abs() <= 1.0, "j={j} got={got} expected={expected}");
        }
    }

    #[test]
    fn rejects_bad_axis() {
        let q = QParamsS8::new(0.5, 0);
        assert!(prepare_mean_s8(&[2, 2], &[2], q, q, Rounding::Double).is_err());
        assert!(prepare_mean_s8(&[2, 2], &[-3], q, q, Rounding::Double).is_err());
    }

    #[test]
    fn int16_global_average_by_hand() {
        // [1, 2, 2, 1] over H and W, same scale: (30000 + 30000 + 30000 + 29999) / 4 = 29999.75 →
        // 30000 (the sum 119999 exceeds int16 but not the int32 accumulator).
        let q = QParamsS16::new(0.001);
        let params = prepare_mean(&[1, 2, 2, 1], &[1, 2], q, q, Rounding::Double).unwrap();
        let mut out = [0i16; 1];
        mean(&params, &[30000, 30000, 30000, 29999], &mut out);
        assert_eq!(out, [30000]);
        mean(&params, &[-1, -2, -2, -2], &mut out);
        assert_eq!(out, [-2]); // −1.75
                               // Output scale twice the input's: the mean is halved; a larger output range saturates.
        let params = prepare_mean(&[2, 2], &[1], q, QParamsS16::new(0.002), Rounding::Double).unwrap();
        let mut out = [0i16; 2];
        mean(&params, &[100, 300, -32768, -32768], &mut out);
        assert_eq!(out, [100, -16384]);
        let params = prepare_mean(&[2, 2], &[1], q, QParamsS16::new(0.0005), Rounding::Double).unwrap();
        mean(&params, &[100, 300, -32768, -32768], &mut out);
        assert_eq!(out, [400, i16::MIN]);
        assert!(prepare_mean(&[2, 2], &[1], QParamsS16 { scale: 0.001, zero_point: 1 }, q, Rounding::Double).is_err());
    }
}
