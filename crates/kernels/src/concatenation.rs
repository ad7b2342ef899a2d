//! CONCATENATION along one axis (`reference/concatenation.h::Concatenation`), a pure copy.
//!
//! TFLM requires every int8 input to carry exactly the output's scale and zero point
//! (`micro/kernels/concatenation.cc`); [`prepare_concatenation`] checks shapes only and
//! [`check_concatenation_qparams_s8`] checks the quantization.

use crate::shape::{resolve_axis, MAX_DIMS};
use crate::{check_same_qparams_s8, KernelError, QParamsS8};

/// The copy geometry: each output row of `outer_size` is the inputs' slabs one after another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConcatenationParams {
    pub outer_size: usize,
    /// Product of the dimensions after the axis.
    pub base_inner_size: usize,
    pub output_size: usize,
}

/// Validates shapes: same rank (≤ 6), equal dimensions except along `axis` (negative allowed),
/// and the output's axis dimension equal to the inputs' sum.
pub fn prepare_concatenation(
    axis: i32,
    input_shapes: &[&[usize]],
    output_shape: &[usize],
) -> Result<ConcatenationParams, KernelError> {
    let rank = output_shape.len();
    if rank > MAX_DIMS {
        return Err(KernelError::Unsupported { what: "concatenation above 6 dimensions" });
    }
    if input_shapes.is_empty() {
        return Err(KernelError::InvalidShape { what: "concatenation without inputs" });
    }
    let axis = resolve_axis(axis, rank)?;
    let mut axis_sum = 0;
    for shape in input_shapes {
        if shape.len() != rank {
            return Err(KernelError::ShapeMismatch {
                what: "concatenation input rank",
                expected: rank,
                actual: shape.len(),
            });
        }
        for (d, (&a, &b)) in shape.iter().zip(output_shape).enumerate() {
            if d != axis && a != b {
                return Err(KernelError::ShapeMismatch {
                    what: "concatenation input dimension",
                    expected: b,
                    actual: a,
                });
            }
        }
        axis_sum += shape[axis];
    }
    if axis_sum != output_shape[axis] {
        return Err(KernelError::ShapeMismatch {
            what: "concatenation output axis dimension",
            expected: axis_sum,
            actual: output_shape[axis],
        });
    }
    Ok(ConcatenationParams {
        outer_size: output_shape[..axis].iter().product(),
        base_inner_size: output_shape[axis + 1..].iter().product(),
        output_size: output_shape.iter().product(),
    })
}

/// Every int8 input must have exactly the output's quantization.
pub fn check_concatenation_qparams_s8(inputs: &[QParamsS8], output: QParamsS8) -> Result<(), KernelError> {
    output.validate("output")?;
    inputs.iter().try_for_each(|&q| check_same_qparams_s8("concatenation input", q, output))
}

/// TFLM `reference_ops::Concatenation`. `inputs` are in axis order; each input's slab per outer
/// row is `input.len() / outer_size` elements.
///
/// # Panics
/// If the slice lengths disagree with `params`.
pub fn concatenation<T: Copy>(params: &ConcatenationParams, inputs: &[&[T]], output: &mut [T]) {
    assert_eq!(output.len(), params.output_size);
    assert_eq!(inputs.iter().map(|i| i.len()).sum::<usize>(), params.output_size);
    if params.output_size == 0 {
        return;
    }
    let mut out = 0;
    for k in 0..params.outer_size {
        for input in inputs {
            let copy_size = input.len() / params.outer_size;
            output[out..out + copy_size].copy_from_slice(&input[k * copy_size..(k + 1) * copy_size]);
            out += copy_size;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concatenates_along_middle_axis() {
        let params = prepare_concatenation(-2, &[&[2, 1, 2], &[2, 2, 2]], &[2, 3, 2]).unwrap();
        let mut out = [0i8; 12];
        concatenation(&params, &[&[1, 2, 3, 4], &[5, 6, 7, 8, 9, 10, 11, 12]], &mut out);
        assert_eq!(out, [1, 2, 5, 6, 7, 8, 3, 4, 9, 10, 11, 12]);
        assert!(prepare_concatenation(1, &[&[2, 1, 2], &[3, 2, 2]], &[2, 3, 2]).is_err());
        assert!(prepare_concatenation(1, &[&[2, 1, 2]], &[2, 3, 2]).is_err());
        let q = QParamsS8::new(0.1, 2);
        assert!(check_concatenation_qparams_s8(&[q, q], q).is_ok());
        assert!(check_concatenation_qparams_s8(&[q, QParamsS8::new(0.1, 3)], q).is_err());
    }
}
