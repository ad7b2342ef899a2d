//! MEAN, the fast form of [`crate::mean::mean`] when the reduced axes are one run of adjacent
//! axes (global average pooling: axes 1 and 2 of NHWC). The input is then `[outer][reduced][inner]`
//! and each output `[outer][inner]` is the int32 sum over `reduced`, taken a row of `inner` values
//! at a time (loops the compiler vectorises) instead of one index walk per output; integer sums do
//! not depend on their order, and the output step is the reference's.

use crate::fixedpoint::multiply_by_quantized_multiplier_with;
use crate::mean::MeanParams;
use crate::QuantizedInt;

/// Inner values summed per pass (the int32 sums live on the stack).
const CHUNK: usize = 64;

/// TFLM's MEAN (int8 and int16), as [`crate::mean::mean`]: the same bytes for every input.
///
/// # Panics
/// If `input` or `output` does not match the prepared shape.
pub fn mean<T: QuantizedInt>(params: &MeanParams, input: &[T], output: &mut [T]) {
    let shape = params.input_shape.as_slice();
    let reduced: Vec<usize> = (0..shape.len()).filter(|&a| params.reduced[a]).collect();
    let (Some(&first), Some(&last)) = (reduced.first(), reduced.last()) else {
        return crate::mean::mean(params, input, output);
    };
    if last - first + 1 != reduced.len() || params.num_elements_in_axis == 0 {
        return crate::mean::mean(params, input, output);
    }
    assert_eq!(input.len(), params.input_shape.flat_size());
    assert_eq!(output.len(), params.output_size());
    let inner: usize = shape[last + 1..].iter().product();
    let count = params.num_elements_in_axis;
    let zero_point_sum = params.input_zero_point.wrapping_mul(count as i32);
    let finish = |sum: i32| {
        let shifted = sum.wrapping_sub(zero_point_sum);
        let value = multiply_by_quantized_multiplier_with(
            shifted,
            params.output_multiplier,
            params.output_shift,
            params.rounding,
        );
        T::saturate(value.wrapping_add(params.output_zero_point))
    };
    if inner == 0 {
        return;
    }
    for (x, out) in input.chunks_exact(count * inner).zip(output.chunks_exact_mut(inner)) {
        for c0 in (0..inner).step_by(CHUNK) {
            let n = CHUNK.min(inner - c0);
            let mut acc = [0i32; CHUNK];
            for row in x.chunks_exact(inner) {
                for (a, &v) in acc.iter_mut().zip(&row[c0..c0 + n]) {
                    *a = a.wrapping_add(v.into());
                }
            }
            for (o, &a) in out[c0..c0 + n].iter_mut().zip(&acc) {
                *o = finish(a);
            }
        }
    }
}
