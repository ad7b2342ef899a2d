//! MAX_POOL_2D and AVERAGE_POOL_2D, the fast forms of [`crate::max_pool::max_pool`] and
//! [`crate::average_pool::average_pool`]: each output pixel's in-image window is found once and
//! reduced over all channels at a time (loops the compiler vectorises), with the reference's
//! arithmetic per channel: the maximum, or the int32 sum divided by the tap count rounding half
//! away from zero, then the activation clamp.

use crate::pooling::PoolParams;
use crate::QuantizedInt;

/// Channels reduced per pass of the average (the int32 sums live on the stack).
const CHUNK: usize = 64;

/// The in-image rows and columns of output pixel `(out_y, out_x)`'s window.
fn window(params: &PoolParams, out_y: usize, out_x: usize) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
    let [_, in_height, in_width, _] = params.input_shape;
    let span = |origin: isize, filter: usize, size: usize| {
        origin.max(0) as usize..(origin + filter as isize).min(size as isize).max(0) as usize
    };
    let y0 = (out_y * params.stride_height) as isize - params.padding_values.height as isize;
    let x0 = (out_x * params.stride_width) as isize - params.padding_values.width as isize;
    (span(y0, params.filter_height, in_height), span(x0, params.filter_width, in_width))
}

/// Calls `f(output pixel, window rows, window columns, input sample)` for every output pixel.
fn for_each_pixel<T>(
    params: &PoolParams,
    input: &[T],
    output: &mut [T],
    mut f: impl FnMut(&mut [T], std::ops::Range<usize>, std::ops::Range<usize>, &[T]),
) {
    let [_, in_height, in_width, depth] = params.input_shape;
    let [_, out_height, out_width, _] = params.output_shape;
    let (in_sample, out_sample) = (in_height * in_width * depth, out_height * out_width * depth);
    // Any number of samples (the prepared batch count is not used).
    assert!(input.len().is_multiple_of(in_sample) && output.len() == input.len() / in_sample * out_sample);
    for (x, y) in input.chunks_exact(in_sample).zip(output.chunks_exact_mut(out_sample)) {
        for (pixel, out) in y.chunks_exact_mut(depth).enumerate() {
            let (ys, xs) = window(params, pixel / out_width, pixel % out_width);
            f(out, ys, xs, x);
        }
    }
}

/// TFLM `reference_integer_ops::MaxPool` (int8 and int16), on any number of samples.
///
/// # Panics
/// If `input` is not whole samples or `output` does not match.
pub fn max_pool<T: QuantizedInt>(params: &PoolParams, input: &[T], output: &mut [T]) {
    let [_, _, in_width, depth] = params.input_shape;
    let (min, max) = (T::saturate(params.quantized_activation_min), T::saturate(params.quantized_activation_max));
    for_each_pixel(params, input, output, |out, ys, xs, x| {
        out.fill(T::MIN);
        for in_y in ys {
            for in_x in xs.clone() {
                let row = &x[(in_y * in_width + in_x) * depth..][..depth];
                for (o, &v) in out.iter_mut().zip(row) {
                    *o = (*o).max(v);
                }
            }
        }
        for o in out.iter_mut() {
            *o = (*o).clamp(min, max);
        }
    });
}

/// TFLM `reference_integer_ops::AveragePool` (int8 and int16), on any number of samples.
///
/// # Panics
/// If `input` is not whole samples or `output` does not match.
pub fn average_pool<T: QuantizedInt>(params: &PoolParams, input: &[T], output: &mut [T]) {
    let [_, _, in_width, depth] = params.input_shape;
    let (min, max) = (params.quantized_activation_min, params.quantized_activation_max);
    for_each_pixel(params, input, output, |out, ys, xs, x| {
        let count = (ys.len() * xs.len()) as i32;
        for c0 in (0..depth).step_by(CHUNK) {
            let n = CHUNK.min(depth - c0);
            let mut acc = [0i32; CHUNK];
            for in_y in ys.clone() {
                for in_x in xs.clone() {
                    let row = &x[(in_y * in_width + in_x) * depth + c0..][..n];
                    for (a, &v) in acc.iter_mut().zip(row) {
                        *a = a.wrapping_add(v.into());
                    }
                }
            }
            for (o, &a) in out[c0..c0 + n].iter_mut().zip(&acc) {
                let average = if a > 0 { (a + count / 2) / count } else { (a - count / 2) / count };
                *o = T::saturate(average.clamp(min, max));
            }
        }
    });
}
