//! PAD, the fast form of [`crate::pad::pad`]: the same fill, then the input copied in contiguous
//! runs (every trailing dimension without padding joins the run) instead of element by element.

use crate::pad::PadParams;

/// TFLM `reference_ops::Pad`, copying whole runs.
///
/// # Panics
/// If the slice lengths disagree with `params`.
pub fn pad<T: Copy>(params: &PadParams, pad_value: T, input: &[T], output: &mut [T]) {
    assert_eq!(input.len(), params.input_shape.flat_size());
    assert_eq!(output.len(), params.output_shape.flat_size());
    output.fill(pad_value);
    if input.is_empty() {
        return;
    }
    let (in_dims, out_dims) = (params.input_shape.as_slice(), params.output_shape.as_slice());
    let out_strides = params.output_shape.strides();
    // Dimensions `outer..` are copied as one run per index of the dimensions before them.
    let mut outer = in_dims.len();
    while outer > 1 && in_dims[outer - 1] == out_dims[outer - 1] {
        outer -= 1;
    }
    let outer = outer - 1;
    let run: usize = in_dims[outer..].iter().product();
    let run_offset = params.before[outer] * out_strides[outer];
    let mut index = [0usize; crate::MAX_DIMS];
    for chunk in input.chunks_exact(run) {
        let start: usize =
            (0..outer).map(|d| (index[d] + params.before[d]) * out_strides[d]).sum::<usize>() + run_offset;
        output[start..start + run].copy_from_slice(chunk);
        for d in (0..outer).rev() {
            index[d] += 1;
            if index[d] < in_dims[d] {
                break;
            }
            index[d] = 0;
        }
    }
}
