//! RESHAPE (and SQUEEZE, EXPAND_DIMS): a copy of int8, int16 or float values; input and output
//! share type and quantization (`micro/kernels/reshape.cc` checks only the type and the element
//! count, and copies bytes whatever the type).

use crate::KernelError;

/// Checks that the element counts agree.
pub fn prepare_reshape(input_shape: &[usize], output_shape: &[usize]) -> Result<usize, KernelError> {
    let (n_in, n_out) = (input_shape.iter().product(), output_shape.iter().product());
    if n_in != n_out {
        return Err(KernelError::ShapeMismatch { what: "reshape element count", expected: n_in, actual: n_out });
    }
    Ok(n_in)
}

/// Copies `input` to `output`.
///
/// # Panics
/// If the slices differ in length.
pub fn reshape<T: Copy>(input: &[T], output: &mut [T]) {
    output.copy_from_slice(input);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies() {
        assert_eq!(prepare_reshape(&[2, 3], &[3, 2]).unwrap(), 6);
        assert!(prepare_reshape(&[2, 3], &[4]).is_err());
        let mut out = [0i8; 3];
        reshape(&[1, 2, 3], &mut out);
        assert_eq!(out, [1, 2, 3]);
    }

    #[test]
    fn copies_int16() {
        let mut out = [0i16; 4];
        reshape(&[-32768, 1, 2, 32767], &mut out);
        assert_eq!(out, [-32768, 1, 2, 32767]);
    }
}
