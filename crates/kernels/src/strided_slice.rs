//! STRIDED_SLICE: copies every `strides[i]`-th element from `begin[i]` up to `end[i]` along each
//! axis, on any element type (TFLM runs it on int8 values as they are stored).
//!
//! Mirrors `micro/kernels/strided_slice.cc` and `strided_slice_common.cc`: Prepare refuses inputs
//! of rank above 4 and a zero stride, and keeps TFLite's `StridedSliceParams` (begin, end,
//! strides, begin/end/shrink masks); Eval is `reference_ops::StridedSlice`: the indices padded to
//! five axes (`StridedSlicePadIndices`), each axis's start and stop resolved by
//! `StridedSliceStartForAxis`/`StridedSliceEndForAxis`, then five nested loops.

use crate::KernelError;

/// The resolved five-axis loop bounds of one STRIDED_SLICE.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StridedSliceParams {
    pub start: [i32; 5],
    pub stop: [i32; 5],
    pub strides: [i32; 5],
    /// The input shape extended to five axes.
    pub shape: [i32; 5],
}

/// TFLite's `StridedSliceParams` before padding (no ellipsis, new-axis or offset).
#[derive(Clone, Copy, Debug)]
pub struct StridedSliceOperands<'a> {
    pub begin: &'a [i32],
    pub end: &'a [i32],
    pub strides: &'a [i32],
    pub begin_mask: u32,
    pub end_mask: u32,
    pub shrink_axis_mask: u32,
}

/// `StridedSlicePrepare` (rank at most 4, non-zero strides) and the bound resolution of
/// `reference_ops::StridedSlice`.
pub fn prepare_strided_slice(
    input_shape: &[usize],
    p: StridedSliceOperands<'_>,
) -> Result<StridedSliceParams, KernelError> {
    let dims = input_shape.len();
    if dims > 4 {
        return Err(KernelError::Unsupported { what: "STRIDED_SLICE input of rank above 4" });
    }
    if p.begin.len() != dims || p.end.len() != dims || p.strides.len() != dims {
        return Err(KernelError::InvalidShape {
            what: "STRIDED_SLICE begin, end and strides must have the input's rank",
        });
    }
    if p.strides.contains(&0) {
        return Err(KernelError::InvalidShape { what: "STRIDED_SLICE stride value has to be non-zero" });
    }
    // StridedSlicePadIndices to 5 axes.
    let pad = 5 - dims;
    let (mut begin, mut end, mut strides, mut shape) = ([0i32; 5], [1i32; 5], [1i32; 5], [1i32; 5]);
    for i in 0..dims {
        begin[pad + i] = p.begin[i];
        end[pad + i] = p.end[i];
        strides[pad + i] = p.strides[i];
        shape[pad + i] =
            i32::try_from(input_shape[i]).map_err(|_| KernelError::InvalidShape { what: "dimension too large" })?;
    }
    let low = (1u32 << pad) - 1;
    let begin_mask = (p.begin_mask << pad) | low;
    let end_mask = (p.end_mask << pad) | low;
    let shrink_axis_mask = p.shrink_axis_mask << pad;
    let mut start = [0i32; 5];
    let mut stop = [0i32; 5];
    for axis in 0..5 {
        let (size, stride, bit) = (shape[axis], strides[axis], 1u32 << axis);
        let clamp = |v: i32| if stride > 0 { v.clamp(0, size) } else { v.clamp(-1, size - 1) };
        // StridedSliceStartForAxis
        let mut s = begin[axis];
        if s < 0 {
            s += size;
        }
        s = clamp(s);
        if begin_mask & bit != 0 {
            s = if stride > 0 { 0 } else { size - 1 };
        }
        // StridedSliceEndForAxis
        let e = if shrink_axis_mask & bit != 0 {
            if s >= size {
                s
            } else {
                s + 1
            }
        } else {
            let mut e = end[axis];
            if e < 0 {
                e += size;
            }
            e = clamp(e);
            if end_mask & bit != 0 {
                e = if stride > 0 { size } else { -1 };
            }
            e
        };
        start[axis] = s;
        stop[axis] = e;
    }
    Ok(StridedSliceParams { start, stop, strides, shape })
}

/// How many elements the output has.
pub fn strided_slice_output_size(p: &StridedSliceParams) -> usize {
    (0..5)
        .map(|a| {
            let (b, e, s) = (p.start[a], p.stop[a], p.strides[a]);
            let n = if s > 0 { (e - b + s - 1) / s } else { (b - e - s - 1) / -s };
            n.max(0) as usize
        })
        .product()
}

/// `reference_ops::StridedSlice` over the five padded axes.
///
/// # Panics
/// If `output` is not [`strided_slice_output_size`] long or the input is shorter than the shape.
pub fn strided_slice<T: Copy>(p: &StridedSliceParams, input: &[T], output: &mut [T]) {
    assert_eq!(output.len(), strided_slice_output_size(p));
    let lc = |end: i32, stride: i32, index: i32| if stride < 0 { index > end } else { index < end };
    let sh = p.shape;
    let (st, sp, sd) = (p.start, p.stop, p.strides);
    let mut w = 0usize;
    let mut o0 = st[0];
    while lc(sp[0], sd[0], o0) {
        let mut o1 = st[1];
        while lc(sp[1], sd[1], o1) {
            let mut o2 = st[2];
            while lc(sp[2], sd[2], o2) {
                let mut o3 = st[3];
                while lc(sp[3], sd[3], o3) {
                    let base = (((o0 * sh[1] + o1) * sh[2] + o2) * sh[3] + o3) * sh[4];
                    let mut o4 = st[4];
                    while lc(sp[4], sd[4], o4) {
                        output[w] = input[(base + o4) as usize];
                        w += 1;
                        o4 += sd[4];
                    }
                    o3 += sd[3];
                }
                o2 += sd[2];
            }
            o1 += sd[1];
        }
        o0 += sd[0];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_backward_and_masks() {
        let x: Vec<i8> = (0..24).collect(); // [2, 3, 4]
        let ops = |begin: &'static [i32], end: &'static [i32], strides: &'static [i32], masks: [u32; 3]| {
            StridedSliceOperands {
                begin,
                end,
                strides,
                begin_mask: masks[0],
                end_mask: masks[1],
                shrink_axis_mask: masks[2],
            }
        };
        // x[1, 0:3:2, ::-2]: axis 0 shrunk, axis 2 reversed with the end mask.
        let p = prepare_strided_slice(&[2, 3, 4], ops(&[1, 0, -1], &[2, 3, 0], &[1, 2, -2], [0, 4, 1])).unwrap();
        let mut out = vec![0i8; strided_slice_output_size(&p)];
        strided_slice(&p, &x, &mut out);
        assert_eq!(out, [15, 13, 23, 21]);
        // Negative begin, end past the axis (clamped).
        let p = prepare_strided_slice(&[2, 3, 4], ops(&[0, -1, 1], &[2, 9, 3], &[1, 1, 1], [0; 3])).unwrap();
        let mut out = vec![0i8; strided_slice_output_size(&p)];
        strided_slice(&p, &x, &mut out);
        assert_eq!(out, [9, 10, 21, 22]);
        assert!(prepare_strided_slice(&[1, 1, 1, 1, 1], ops(&[0; 5], &[1; 5], &[1; 5], [0; 3])).is_err());
    }
}
