//! PAD / PADV2 (`reference/pad.h`): copy the input into the middle of the output and fill the
//! rest with one value. For int8 PAD the value is the output zero point; for PADV2 it is the
//! constant, which must share the output's quantization (`micro/kernels/pad.cc`).

use crate::shape::{next_index, Dims, MAX_DIMS};
use crate::KernelError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PadParams {
    pub input_shape: Dims,
    pub output_shape: Dims,
    pub before: [usize; MAX_DIMS],
}

/// `paddings[d] = [before, after]` for each input dimension (rank ≤ 6).
pub fn prepare_pad(input_shape: &[usize], paddings: &[[usize; 2]]) -> Result<PadParams, KernelError> {
    if paddings.len() != input_shape.len() {
        return Err(KernelError::ShapeMismatch {
            what: "pad paddings count",
            expected: input_shape.len(),
            actual: paddings.len(),
        });
    }
    let input = Dims::new(input_shape)?;
    let mut out = [0; MAX_DIMS];
    let mut before = [0; MAX_DIMS];
    for (d, (&n, &[b, a])) in input_shape.iter().zip(paddings).enumerate() {
        out[d] = b + n + a;
        before[d] = b;
    }
    Ok(PadParams { input_shape: input, output_shape: Dims::new(&out[..input_shape.len()])?, before })
}

/// The int8 PAD fill value: the output zero point.
pub fn pad_value_s8(output_zero_point: i32) -> i8 {
    output_zero_point as i8
}

/// TFLM `reference_ops::Pad`.
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
    let in_dims = params.input_shape.as_slice();
    let out_strides = params.output_shape.strides();
    let mut index = [0; MAX_DIMS];
    for &x in input {
        let o: usize = (0..in_dims.len()).map(|d| (index[d] + params.before[d]) * out_strides[d]).sum();
        output[o] = x;
        next_index(&mut index[..in_dims.len()], in_dims);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_with_value() {
        let params = prepare_pad(&[2, 2], &[[1, 0], [0, 2]]).unwrap();
        assert_eq!(params.output_shape.as_slice(), &[3, 4]);
        let mut out = [0i8; 12];
        pad(&params, pad_value_s8(-5), &[1, 2, 3, 4], &mut out);
        assert_eq!(out, [-5, -5, -5, -5, 1, 2, -5, -5, 3, 4, -5, -5]);
        assert!(prepare_pad(&[2, 2], &[[1, 0]]).is_err());
    }
}
