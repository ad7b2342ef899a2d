//! REDUCE_MAX on int8: the largest value over a set of axes; input and output share their
//! quantization (TFLM checks it), so values are compared and copied as they are.
//!
//! Mirrors `micro/kernels/reduce_common.cc::EvalMinMaxHelper` (int8) over
//! `reference/reduce.h::ReduceGeneric` with the max reducer: every output starts at the type's
//! lowest value and takes `in > current ? in : current` over the input in row-major order.

use crate::shape::{next_index, Dims};
use crate::KernelError;

/// Input dims and, per input axis, the output stride (0 on reduced axes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ReduceMaxParams {
    input: Dims,
    out_strides: [usize; crate::MAX_DIMS],
    output_size: usize,
}

impl ReduceMaxParams {
    pub fn output_size(&self) -> usize {
        self.output_size
    }
}

/// Checks the axes (negative ones count from the end, repeats are allowed as in TFLM).
pub fn prepare_reduce_max(input: &[usize], axes: &[i32]) -> Result<ReduceMaxParams, KernelError> {
    let dims = Dims::new(input)?;
    let rank = input.len() as i32;
    let mut reduced = [false; crate::MAX_DIMS];
    for &a in axes {
        if a < -rank || a >= rank {
            return Err(KernelError::Unsupported { what: "REDUCE_MAX axis out of range" });
        }
        reduced[((a + rank) % rank.max(1)) as usize] = true;
    }
    let mut out_strides = [0; crate::MAX_DIMS];
    let mut stride = 1;
    for axis in (0..input.len()).rev() {
        if !reduced[axis] {
            out_strides[axis] = stride;
            stride *= input[axis];
        }
    }
    Ok(ReduceMaxParams { input: dims, out_strides, output_size: stride })
}

/// TFLM's int8 REDUCE_MAX.
///
/// # Panics
/// If the slices disagree with `p`.
pub fn reduce_max_s8(p: &ReduceMaxParams, input: &[i8], output: &mut [i8]) {
    assert_eq!(input.len(), p.input.flat_size());
    assert_eq!(output.len(), p.output_size);
    output.fill(i8::MIN);
    if input.is_empty() {
        return;
    }
    let dims = p.input.as_slice();
    let mut index = [0usize; crate::MAX_DIMS];
    let mut i = 0;
    loop {
        let o: usize = (0..dims.len()).map(|a| index[a] * p.out_strides[a]).sum();
        let v = input[i];
        if v > output[o] {
            output[o] = v;
        }
        i += 1;
        if !next_index(&mut index[..dims.len()], dims) {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_over_axes() {
        // [2, 3]: rows (1, -5, 7), (-128, 4, 2)
        let x = [1i8, -5, 7, -128, 4, 2];
        let mut out = [0i8; 3];
        reduce_max_s8(&prepare_reduce_max(&[2, 3], &[0]).unwrap(), &x, &mut out);
        assert_eq!(out, [1, 4, 7]);
        let mut out = [0i8; 2];
        reduce_max_s8(&prepare_reduce_max(&[2, 3], &[-1]).unwrap(), &x, &mut out);
        assert_eq!(out, [7, 4]);
        let mut out = [0i8; 1];
        reduce_max_s8(&prepare_reduce_max(&[2, 3], &[0, 1, 1]).unwrap(), &x, &mut out);
        assert_eq!(out, [7]);
        assert!(prepare_reduce_max(&[2, 3], &[2]).is_err());
    }
}
