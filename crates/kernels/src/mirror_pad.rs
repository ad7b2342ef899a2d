//! MIRROR_PAD: pads each axis with the input mirrored at its edges (`REFLECT` leaves the edge
//! out, `SYMMETRIC` repeats it), on stored values of any type (TFLM runs it on int8 as is).
//!
//! Mirrors `micro/kernels/mirror_pad.cc`: Prepare keeps the rank, the output size and the
//! `offset` (1 for REFLECT, 0 for SYMMETRIC); Eval fills the element counts per axis
//! (`output_dims_num_elements`, `input_dims_num_elements`, TFLM's two scratch buffers) and reads
//! every output element from `GetFlatIndex`, each axis through `GetInputDimension`.

use crate::KernelError;

/// TFLM's `OpDataMirrorPad` with the paddings and the two per-axis element counts.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MirrorPadParams {
    pub offset: i32,
    pub output_size: usize,
    pub input_dims: Vec<i32>,
    /// `[before, after]` per axis.
    pub paddings: Vec<[i32; 2]>,
    pub output_dims_num_elements: Vec<i32>,
    pub input_dims_num_elements: Vec<i32>,
}

/// `MirrorPadPrepare` and the element counts Eval computes.
pub fn prepare_mirror_pad(
    input_shape: &[usize],
    paddings: &[[usize; 2]],
    reflect: bool,
) -> Result<MirrorPadParams, KernelError> {
    if paddings.len() != input_shape.len() {
        return Err(KernelError::InvalidShape { what: "MIRROR_PAD paddings must have one row per input axis" });
    }
    let int = |v: usize| i32::try_from(v).map_err(|_| KernelError::InvalidShape { what: "dimension too large" });
    let input_dims: Vec<i32> = input_shape.iter().map(|&d| int(d)).collect::<Result<_, _>>()?;
    let paddings: Vec<[i32; 2]> = paddings.iter().map(|p| Ok([int(p[0])?, int(p[1])?])).collect::<Result<_, _>>()?;
    let output_dims: Vec<i32> = input_dims.iter().zip(&paddings).map(|(d, p)| d + p[0] + p[1]).collect();
    let n = input_dims.len();
    let (mut out_ne, mut in_ne) = (vec![1i32; n], vec![1i32; n]);
    for i in (0..n.saturating_sub(1)).rev() {
        out_ne[i] = out_ne[i + 1] * output_dims[i + 1];
        in_ne[i] = in_ne[i + 1] * input_dims[i + 1];
    }
    Ok(MirrorPadParams {
        offset: i32::from(reflect),
        output_size: output_dims.iter().map(|&d| d as usize).product(),
        input_dims,
        paddings,
        output_dims_num_elements: out_ne,
        input_dims_num_elements: in_ne,
    })
}

/// TFLM's `GetInputDimension`.
fn get_input_dimension(padded_dimension: i32, left_pad: i32, input_dim_size: i32, offset: i32) -> i32 {
    if padded_dimension < left_pad {
        let original_ind = left_pad + offset - 1;
        return original_ind - padded_dimension.min(original_ind - offset);
    }
    let mut padded_dimension = padded_dimension - left_pad;
    if padded_dimension >= input_dim_size {
        padded_dimension -= input_dim_size;
        let original_ind = input_dim_size - (1 + offset);
        return original_ind - padded_dimension.min(original_ind);
    }
    padded_dimension
}

/// TFLM's `MirrorPad` over every output element.
///
/// # Panics
/// If `output` is not `params.output_size` long or an index falls outside `input`.
pub fn mirror_pad<T: Copy>(p: &MirrorPadParams, input: &[T], output: &mut [T]) {
    assert_eq!(output.len(), p.output_size);
    for (i, o) in output.iter_mut().enumerate() {
        // GetFlatIndex
        let mut index = i as i32;
        let mut flat_index = 0i32;
        for d in 0..p.input_dims.len() {
            let dimension_index = index / p.output_dims_num_elements[d];
            let index_in_input = get_input_dimension(dimension_index, p.paddings[d][0], p.input_dims[d], p.offset);
            flat_index += index_in_input * p.input_dims_num_elements[d];
            index %= p.output_dims_num_elements[d];
        }
        *o = input[flat_index as usize];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_and_symmetric() {
        let x = [1i8, 2, 3];
        let reflect = prepare_mirror_pad(&[3], &[[2, 2]], true).unwrap();
        let mut out = [0i8; 7];
        mirror_pad(&reflect, &x, &mut out);
        assert_eq!(out, [3, 2, 1, 2, 3, 2, 1]);
        let symmetric = prepare_mirror_pad(&[3], &[[2, 1]], false).unwrap();
        let mut out = [0i8; 6];
        mirror_pad(&symmetric, &x, &mut out);
        assert_eq!(out, [2, 1, 1, 2, 3, 3]);
        // Two axes: [[1, 2], [3, 4]] reflected by one row above, one column right.
        let two = prepare_mirror_pad(&[2, 2], &[[1, 0], [0, 1]], true).unwrap();
        let mut out = [0i8; 9];
        mirror_pad(&two, &[1, 2, 3, 4], &mut out);
        assert_eq!(out, [3, 4, 3, 1, 2, 1, 3, 4, 3]);
    }
}
