//! MAX_POOL_2D and AVERAGE_POOL_2D, the fast forms of [`crate::max_pool::max_pool`] and
//! [`crate::average_pool::average_pool`]: each output pixel's in-image window is found once and
//! reduced over all channels at a time (loops the compiler vectorises: the maximum over whole
//! chunks of [`LANES`] channels), with the reference's arithmetic per channel: the maximum, or
//! the int32 sum divided by the tap count rounding half away from zero, then the activation
//! clamp. On [`Isa::Avx2`] and above the same loops are compiled for AVX2.

use super::Isa;
use crate::pooling::PoolParams;
use crate::QuantizedInt;

/// Channels per whole chunk of the maximum.
const LANES: usize = 16;

/// Channels reduced per pass of the average (the int32 sums live on the stack).
const CHUNK: usize = 64;

/// The in-image rows and columns of output pixel `(out_y, out_x)`'s window.
#[inline(always)]
fn window(params: &PoolParams, out_y: usize, out_x: usize) -> (std::ops::Range<usize>, std::ops::Range<usize>) {
    let [_, in_height, in_width, _] = params.input_shape;
    let span = |origin: isize, filter: usize, size: usize| {
        origin.max(0) as usize..(origin + filter as isize).min(size as isize).max(0) as usize
    };
    let y0 = (out_y * params.stride_height) as isize - params.padding_values.height as isize;
    let x0 = (out_x * params.stride_width) as isize - params.padding_values.width as isize;
    (span(y0, params.filter_height, in_height), span(x0, params.filter_width, in_width))
}

/// `(input sample, output sample)` pairs of `input` and `output` (any number of samples: the
/// prepared batch count is not used).
#[inline(always)]
fn samples<'a, T>(
    params: &PoolParams,
    input: &'a [T],
    output: &'a mut [T],
) -> impl Iterator<Item = (&'a [T], &'a mut [T])> {
    let [_, in_height, in_width, depth] = params.input_shape;
    let [_, out_height, out_width, _] = params.output_shape;
    let (in_sample, out_sample) = (in_height * in_width * depth, out_height * out_width * depth);
    assert!(input.len().is_multiple_of(in_sample) && output.len() == input.len() / in_sample * out_sample);
    input.chunks_exact(in_sample).zip(output.chunks_exact_mut(out_sample))
}

/// TFLM `reference_integer_ops::MaxPool` (int8 and int16), on any number of samples.
///
/// # Panics
/// If `input` is not whole samples or `output` does not match.
pub fn max_pool<T: QuantizedInt>(isa: Isa, params: &PoolParams, input: &[T], output: &mut [T]) {
    #[cfg(target_arch = "x86_64")]
    if std::any::TypeId::of::<T>() == std::any::TypeId::of::<i8>()
        && params.input_shape[3].is_multiple_of(16)
        && isa.checked() != Isa::Portable
    {
        // SAFETY: `T` is `i8` (same size and layout); `checked` returns AVX2 or above only when
        // the CPU has AVX2.
        return unsafe {
            let input = std::slice::from_raw_parts(input.as_ptr() as *const i8, input.len());
            let output = std::slice::from_raw_parts_mut(output.as_mut_ptr() as *mut i8, output.len());
            max_pool_i8_avx2(params, input, output)
        };
    }
    match isa.checked() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `checked` returns AVX2 or above only when the CPU has AVX2.
        Isa::Avx2 | Isa::Avx512Vnni => unsafe { max_pool_avx2(params, input, output) },
        _ => max_pool_body(params, input, output),
    }
}

/// TFLM `reference_integer_ops::AveragePool` (int8 and int16), on any number of samples.
///
/// # Panics
/// If `input` is not whole samples or `output` does not match.
pub fn average_pool<T: QuantizedInt>(isa: Isa, params: &PoolParams, input: &[T], output: &mut [T]) {
    match isa.checked() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `checked` returns AVX2 or above only when the CPU has AVX2.
        Isa::Avx2 | Isa::Avx512Vnni => unsafe { average_pool_avx2(params, input, output) },
        _ => average_pool_body(params, input, output),
    }
}

/// [`max_pool_body`] for int8 with a depth that is a whole number of 16-byte vectors, written
/// with AVX2 intrinsics: each vector's maximum over the window in a register.
///
/// # Safety
/// The CPU has AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn max_pool_i8_avx2(params: &PoolParams, input: &[i8], output: &mut [i8]) {
    use std::arch::x86_64::*;
    let [_, _, in_width, depth] = params.input_shape;
    let out_width = params.output_shape[2];
    assert!(depth.is_multiple_of(16));
    let (min, max) = (
        _mm_set1_epi8(params.quantized_activation_min.clamp(-128, 127) as i8),
        _mm_set1_epi8(params.quantized_activation_max.clamp(-128, 127) as i8),
    );
    for (x, y) in samples(params, input, output) {
        for (out_y, line) in y.chunks_exact_mut(out_width * depth).enumerate() {
            let ys = window(params, out_y, 0).0;
            for (out_x, out) in line.chunks_exact_mut(depth).enumerate() {
                let xs = window(params, out_y, out_x).1;
                for c in (0..depth).step_by(16) {
                    let mut acc = _mm_set1_epi8(i8::MIN);
                    for in_y in ys.clone() {
                        let row = &x[(in_y * in_width + xs.start) * depth + c..];
                        for tap in 0..xs.len() {
                            // SAFETY: the window lies in the image, so each tap's 16 channels
                            // from `c` lie in `row`.
                            acc = _mm_max_epi8(acc, unsafe {
                                _mm_loadu_si128(row[tap * depth..][..16].as_ptr() as *const __m128i)
                            });
                        }
                    }
                    let v = _mm_min_epi8(_mm_max_epi8(acc, min), max);
                    // SAFETY: `c + 16 ≤ depth`, the pixel's length.
                    unsafe { _mm_storeu_si128(out[c..c + 16].as_mut_ptr() as *mut __m128i, v) };
                }
            }
        }
    }
}

/// [`max_pool_body`] compiled for AVX2.
///
/// # Safety
/// The CPU has AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn max_pool_avx2<T: QuantizedInt>(params: &PoolParams, input: &[T], output: &mut [T]) {
    max_pool_body(params, input, output)
}

/// [`average_pool_body`] compiled for AVX2.
///
/// # Safety
/// The CPU has AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn average_pool_avx2<T: QuantizedInt>(params: &PoolParams, input: &[T], output: &mut [T]) {
    average_pool_body(params, input, output)
}

/// The loops of [`max_pool`], written without closures so that [`max_pool_avx2`] compiles all
/// of them for AVX2.
#[inline(always)]
fn max_pool_body<T: QuantizedInt>(params: &PoolParams, input: &[T], output: &mut [T]) {
    let [_, _, in_width, depth] = params.input_shape;
    let out_width = params.output_shape[2];
    let (min, max) = (T::saturate(params.quantized_activation_min), T::saturate(params.quantized_activation_max));
    for (x, y) in samples(params, input, output) {
        for (out_y, line) in y.chunks_exact_mut(out_width * depth).enumerate() {
            for (out_x, out) in line.chunks_exact_mut(depth).enumerate() {
                let (ys, xs) = window(params, out_y, out_x);
                let (chunks, rest) = out.as_chunks_mut::<LANES>();
                let done = chunks.len() * LANES;
                // Each chunk's maximum is kept in registers over the whole window.
                for (c, chunk) in chunks.iter_mut().enumerate() {
                    let mut acc = [T::MIN; LANES];
                    for in_y in ys.clone() {
                        for in_x in xs.clone() {
                            let row = &x[(in_y * in_width + in_x) * depth + c * LANES..][..LANES];
                            for (a, &v) in acc.iter_mut().zip(row) {
                                *a = (*a).max(v);
                            }
                        }
                    }
                    for (o, a) in chunk.iter_mut().zip(acc) {
                        *o = a.clamp(min, max);
                    }
                }
                rest.fill(T::MIN);
                for in_y in ys {
                    for in_x in xs.clone() {
                        let row = &x[(in_y * in_width + in_x) * depth + done..][..rest.len()];
                        for (o, &v) in rest.iter_mut().zip(row) {
                            *o = (*o).max(v);
                        }
                    }
                }
                for o in rest.iter_mut() {
                    *o = (*o).clamp(min, max);
                }
            }
        }
    }
}

/// The loops of [`average_pool`], without closures (see [`max_pool_body`]).
#[inline(always)]
fn average_pool_body<T: QuantizedInt>(params: &PoolParams, input: &[T], output: &mut [T]) {
    let [_, _, in_width, depth] = params.input_shape;
    let out_width = params.output_shape[2];
    let (min, max) = (params.quantized_activation_min, params.quantized_activation_max);
    for (x, y) in samples(params, input, output) {
        for (out_y, line) in y.chunks_exact_mut(out_width * depth).enumerate() {
            for (out_x, out) in line.chunks_exact_mut(depth).enumerate() {
                let (ys, xs) = window(params, out_y, out_x);
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
            }
        }
    }
}
