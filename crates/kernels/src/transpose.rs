//! TRANSPOSE (`reference/transpose.h`) over up to 6 dimensions: a pure permutation of elements,
//! so input and output share quantization.

use crate::shape::{next_index, Dims, MAX_DIMS};
use crate::KernelError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TransposeParams {
    pub input_shape: Dims,
    pub output_shape: Dims,
    /// `output dim i = input dim perm[i]`.
    pub perm: [usize; MAX_DIMS],
}

/// `perm` must be a permutation of `0..rank`.
pub fn prepare_transpose(input_shape: &[usize], perm: &[usize]) -> Result<TransposeParams, KernelError> {
    let input = Dims::new(input_shape)?;
    if perm.len() != input_shape.len() {
        return Err(KernelError::ShapeMismatch {
            what: "transpose permutation length",
            expected: input_shape.len(),
            actual: perm.len(),
        });
    }
    let mut seen = [false; MAX_DIMS];
    let mut out = [0; MAX_DIMS];
    let mut permutation = [0; MAX_DIMS];
    for (i, &p) in perm.iter().enumerate() {
        if p >= perm.len() || seen[p] {
            return Err(KernelError::InvalidShape { what: "transpose perm is not a permutation" });
        }
        seen[p] = true;
        out[i] = input_shape[p];
        permutation[i] = p;
    }
    Ok(TransposeParams { input_shape: input, output_shape: Dims::new(&out[..perm.len()])?, perm: permutation })
}

/// TFLM `reference_ops::Transpose`: walks the output in row-major order.
///
/// # Panics
/// If the slice lengths disagree with `params`.
pub fn transpose<T: Copy>(params: &TransposeParams, input: &[T], output: &mut [T]) {
    assert_eq!(input.len(), params.input_shape.flat_size());
    assert_eq!(output.len(), params.output_shape.flat_size());
    if output.is_empty() {
        return;
    }
    let out_dims = params.output_shape.as_slice();
    let in_strides = params.input_shape.strides();
    let mut index = [0; MAX_DIMS];
    for out in output.iter_mut() {
        let i: usize = (0..out_dims.len()).map(|d| index[d] * in_strides[params.perm[d]]).sum();
        *out = input[i];
        next_index(&mut index[..out_dims.len()], out_dims);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nchw_to_nhwc() {
        // [1, 2, 2, 3] NCHW... here [N=1, C=2, H=1, W=3] → NHWC [1, 1, 3, 2].
        let params = prepare_transpose(&[1, 2, 1, 3], &[0, 2, 3, 1]).unwrap();
        assert_eq!(params.output_shape.as_slice(), &[1, 1, 3, 2]);
        let mut out = [0i8; 6];
        transpose(&params, &[1, 2, 3, 4, 5, 6], &mut out);
        assert_eq!(out, [1, 4, 2, 5, 3, 6]);
        assert!(prepare_transpose(&[2, 2], &[0, 0]).is_err());
    }
}
