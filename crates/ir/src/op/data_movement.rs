//! Ops that only move data: ONNX `Concat`, `Transpose`, `Pad`, `Resize`/`Upsample` (nearest),
//! `Slice`/`Split`/`Gather` on constant indices;
//! TFLite `CONCATENATION`, `TRANSPOSE`, `PAD`/`PADV2`, `RESIZE_NEAREST_NEIGHBOR`,
//! `STRIDED_SLICE`. Under the int8 spec they keep their input's scale and zero point.

use super::FusedActivation;

/// Inputs: one or more tensors equal in every dimension except `axis`.
#[derive(Clone, Debug, PartialEq)]
pub struct Concat {
    pub axis: usize,
    pub activation: FusedActivation,
}

impl Concat {
    pub fn output_shape(&self, inputs: &[&[usize]]) -> Result<Vec<usize>, String> {
        let first = inputs[0];
        if self.axis >= first.len() {
            return Err(format!("axis {} out of range for rank {}", self.axis, first.len()));
        }
        let mut out = first.to_vec();
        out[self.axis] = 0;
        for s in inputs {
            let same =
                s.len() == first.len() && s.iter().zip(first).enumerate().all(|(i, (a, b))| i == self.axis || a == b);
            if !same {
                return Err(format!("input shapes {first:?} and {s:?} differ outside axis {}", self.axis));
            }
            out[self.axis] += s[self.axis];
        }
        Ok(out)
    }
}

/// Inputs: data. Output dim `i` is input dim `perm[i]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Transpose {
    pub perm: Vec<usize>,
}

impl Transpose {
    pub fn output_shape(&self, x: &[usize]) -> Result<Vec<usize>, String> {
        let mut seen = vec![false; x.len()];
        if self.perm.len() != x.len()
            || !self.perm.iter().all(|&p| p < x.len() && !std::mem::replace(&mut seen[p], true))
        {
            return Err(format!("perm {:?} is not a permutation of rank {}", self.perm, x.len()));
        }
        Ok(self.perm.iter().map(|&p| x[p]).collect())
    }
}

/// Inputs: data. Constant padding of `value` around each dimension: `pads[i] = [before, after]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Pad {
    pub pads: Vec<[usize; 2]>,
    pub value: f32,
}

impl Pad {
    pub fn output_shape(&self, x: &[usize]) -> Result<Vec<usize>, String> {
        if self.pads.len() != x.len() {
            return Err(format!("{} pad pairs for rank {}", self.pads.len(), x.len()));
        }
        Ok(x.iter().zip(&self.pads).map(|(d, p)| d.saturating_add(p[0]).saturating_add(p[1])).collect())
    }
}

/// Inputs: `x [N, H, W, C]`. Nearest-neighbour resize to `size = [H', W']`, TFLite's
/// `RESIZE_NEAREST_NEIGHBOR` (`reference/resize_nearest_neighbor.h`): source index
/// `min(floor((o + offset) · scale), in − 1)` with `scale = in / out` (`(in − 1) / (out − 1)` and
/// rounding half away from zero with `align_corners`) and `offset = 0.5` with
/// `half_pixel_centers` (then also at least 0), in float32.
#[derive(Clone, Debug, PartialEq)]
pub struct ResizeNearest {
    pub size: [usize; 2],
    pub align_corners: bool,
    pub half_pixel_centers: bool,
}

impl ResizeNearest {
    pub fn output_shape(&self, x: &[usize]) -> Result<Vec<usize>, String> {
        if x.len() != 4 || self.size.contains(&0) {
            return Err(format!("expects a 4-D NHWC input and a non-empty size, got {x:?} to {:?}", self.size));
        }
        Ok(vec![x[0], self.size[0], self.size[1], x[3]])
    }

    /// The two source indices along one axis for output index `o` and the weight of the second,
    /// as TFLite's float `ComputeInterpolationValues` (`reference/resize_bilinear.h`) computes
    /// them in float32: `scale = in / out` (`(in − 1) / (out − 1)` with `align_corners`), the
    /// position `o · scale` (`(o + 0.5) · scale − 0.5` with `half_pixel_centers`), its floor
    /// (at least 0) and ceiling (at most `in − 1`).
    pub fn bilinear_taps(&self, o: usize, input: usize, output: usize) -> (usize, usize, f32) {
        let scale = if self.align_corners && output > 1 {
            (input as f32 - 1.0) / (output as f32 - 1.0)
        } else {
            input as f32 / output as f32
        };
        let v = if self.half_pixel_centers { (o as f32 + 0.5) * scale - 0.5 } else { o as f32 * scale };
        let lo = (v.floor() as i64).max(0);
        let hi = (v.ceil() as i64).min(input as i64 - 1);
        (lo as usize, hi as usize, v - lo as f32)
    }

    /// The source index along one axis for output index `o` (TFLite `GetNearestNeighbor`).
    pub fn source(&self, o: usize, input: usize, output: usize) -> usize {
        let scale = if self.align_corners && output > 1 {
            (input as f32 - 1.0) / (output as f32 - 1.0)
        } else {
            input as f32 / output as f32
        };
        let offset = if self.half_pixel_centers { 0.5f32 } else { 0.0 };
        let v = (o as f32 + offset) * scale;
        let i = if self.align_corners { v.round() as i64 } else { v.floor() as i64 };
        i.clamp(0, input as i64 - 1) as usize
    }
}

/// Inputs: data. TFLite `STRIDED_SLICE` with its indices resolved against the input's shape
/// (ONNX `Slice`, `Split`, and `Gather` of one index or an evenly spaced run of them): along
/// axis `i` the elements `begin[i], begin[i] + strides[i], …` up to `end[i]` (exclusive, either
/// direction; `end = −1` with a negative stride reaches index 0). Axes in `shrink_axis_mask` hold
/// one element and are left out of the output, as TFLite's mask does.
#[derive(Clone, Debug, PartialEq)]
pub struct StridedSlice {
    pub begin: Vec<i64>,
    pub end: Vec<i64>,
    pub strides: Vec<i64>,
    pub shrink_axis_mask: u32,
}

/// TFLite's STRIDED_SLICE operands and masks (no ellipsis or new axes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StridedSliceTflite {
    pub begin: Vec<i32>,
    pub end: Vec<i32>,
    pub strides: Vec<i32>,
    pub begin_mask: u32,
    pub end_mask: u32,
    pub shrink_axis_mask: u32,
}

impl StridedSlice {
    /// The slice TFLite's operands `p` select from an input of shape `x`: each axis's first index
    /// and stop as `strided_slice_logic.h`'s `StridedSliceStartForAxis`/`StridedSliceEndForAxis`
    /// resolve them (negative indices count from the end, clamped, masks override).
    pub fn from_tflite(x: &[usize], p: &StridedSliceTflite) -> Result<StridedSlice, String> {
        let r = x.len();
        if p.begin.len() != r || p.end.len() != r || p.strides.len() != r || r > 32 {
            return Err(format!(
                "begin, end and strides of lengths {}, {}, {} for an input of rank {r}",
                p.begin.len(),
                p.end.len(),
                p.strides.len()
            ));
        }
        let mut s = StridedSlice { begin: vec![], end: vec![], strides: vec![], shrink_axis_mask: p.shrink_axis_mask };
        for (i, &d) in x.iter().enumerate() {
            let (d, stride, bit) = (d as i64, p.strides[i] as i64, 1u32 << i);
            if stride == 0 {
                return Err(format!("axis {i}: stride 0"));
            }
            let clamp = |v: i64| if stride > 0 { v.clamp(0, d) } else { v.clamp(-1, d - 1) };
            let wrap = |v: i64| if v < 0 { v + d } else { v };
            let mut start = clamp(wrap(p.begin[i] as i64));
            if p.begin_mask & bit != 0 {
                start = if stride > 0 { 0 } else { d - 1 };
            }
            let stop = if p.shrink_axis_mask & bit != 0 {
                if start >= d {
                    start
                } else {
                    start + 1
                }
            } else if p.end_mask & bit != 0 {
                if stride > 0 {
                    d
                } else {
                    -1
                }
            } else {
                clamp(wrap(p.end[i] as i64))
            };
            s.begin.push(start);
            s.end.push(stop);
            s.strides.push(stride);
        }
        Ok(s)
    }

    /// How many elements axis `i` keeps.
    pub fn count(&self, i: usize) -> usize {
        let (b, e, s) = (self.begin[i], self.end[i], self.strides[i]);
        let n = if s > 0 { (e - b + s - 1) / s } else { (b - e + (-s) - 1) / (-s) };
        n.max(0) as usize
    }

    /// The sliced shape with the shrunk axes kept (as ones).
    pub fn sliced_shape(&self, x: &[usize]) -> Result<Vec<usize>, String> {
        let r = x.len();
        if self.begin.len() != r || self.end.len() != r || self.strides.len() != r || r > 32 {
            return Err(format!("slice of {} axes for an input of rank {r}", self.begin.len()));
        }
        for (i, &d) in x.iter().enumerate() {
            let (b, e, s, d) = (self.begin[i], self.end[i], self.strides[i], d as i64);
            let ok = match s {
                0 => false,
                s if s > 0 => (0..=d).contains(&b) && (0..=d).contains(&e),
                _ => (-1..d).contains(&b) && (-1..d).contains(&e),
            };
            let shrink = self.shrink_axis_mask & (1 << i) != 0;
            if !ok || (shrink && self.count(i) != 1) {
                return Err(format!("axis {i} of size {d}: begin {b}, end {e}, stride {s} is not a slice"));
            }
        }
        Ok((0..r).map(|i| self.count(i)).collect())
    }

    pub fn output_shape(&self, x: &[usize]) -> Result<Vec<usize>, String> {
        let s = self.sliced_shape(x)?;
        Ok(s.into_iter().enumerate().filter(|(i, _)| self.shrink_axis_mask & (1 << i) == 0).map(|(_, d)| d).collect())
    }

    /// The operands TFLite's STRIDED_SLICE takes for this slice: a stop of −1 (a negative stride
    /// down to index 0) is written as the end mask, since TFLite reads −1 as the last index.
    pub fn tflite(&self) -> Result<StridedSliceTflite, String> {
        let int = |v: i64| i32::try_from(v).map_err(|_| format!("slice index {v} does not fit in int32"));
        let mut end_mask = 0u32;
        let mut end = Vec::with_capacity(self.end.len());
        for (i, (&e, &s)) in self.end.iter().zip(&self.strides).enumerate() {
            if e < 0 && s < 0 {
                end_mask |= 1 << i;
                end.push(0);
            } else {
                end.push(int(e)?);
            }
        }
        Ok(StridedSliceTflite {
            begin: self.begin.iter().map(|&v| int(v)).collect::<Result<_, _>>()?,
            end,
            strides: self.strides.iter().map(|&v| int(v)).collect::<Result<_, _>>()?,
            begin_mask: 0,
            end_mask,
            shrink_axis_mask: self.shrink_axis_mask,
        })
    }

    /// The flat input index of every output element, in output order.
    pub fn source_indices(&self, x: &[usize]) -> Vec<usize> {
        let r = x.len();
        let mut strides_in = vec![1usize; r];
        for i in (0..r.saturating_sub(1)).rev() {
            strides_in[i] = strides_in[i + 1] * x[i + 1];
        }
        let counts: Vec<usize> = (0..r).map(|i| self.count(i)).collect();
        let total: usize = counts.iter().product();
        let mut out = Vec::with_capacity(total);
        let mut pos = vec![0usize; r];
        for _ in 0..total {
            let idx = (0..r).map(|i| (self.begin[i] + pos[i] as i64 * self.strides[i]) as usize * strides_in[i]).sum();
            out.push(idx);
            for ax in (0..r).rev() {
                pos[ax] += 1;
                if pos[ax] < counts[ax] {
                    break;
                }
                pos[ax] = 0;
            }
        }
        out
    }
}

/// Inputs: data. Padding that mirrors the input at each edge, `pads[i] = [before, after]`:
/// ONNX `Pad` with `mode = reflect` (the edge itself not repeated, `reflect`) and TFLite's
/// `MIRROR_PAD` (`REFLECT`, or `SYMMETRIC`: the edge repeated). A reflected pad is at most
/// `dim − 1`, a symmetric one at most `dim`.
#[derive(Clone, Debug, PartialEq)]
pub struct MirrorPad {
    pub pads: Vec<[usize; 2]>,
    pub reflect: bool,
}

impl MirrorPad {
    pub fn output_shape(&self, x: &[usize]) -> Result<Vec<usize>, String> {
        if self.pads.len() != x.len() {
            return Err(format!("{} pad pairs for rank {}", self.pads.len(), x.len()));
        }
        let offset = usize::from(self.reflect);
        for (i, (&d, p)) in x.iter().zip(&self.pads).enumerate() {
            if p[0].max(p[1]) + offset > d {
                let mode = if self.reflect { "reflected" } else { "symmetric" };
                return Err(format!("axis {i} of size {d} cannot take a {mode} pad of {p:?}"));
            }
        }
        Ok(x.iter().zip(&self.pads).map(|(d, p)| d + p[0] + p[1]).collect())
    }

    /// The input index along one axis of size `size` for output index `o`.
    pub fn source(&self, axis: usize, o: usize, size: usize) -> usize {
        let offset = usize::from(self.reflect);
        let before = self.pads[axis][0];
        if o < before {
            before - o - 1 + offset
        } else if o - before >= size {
            let beyond = o - before - size;
            size - 1 - offset - beyond
        } else {
            o - before
        }
    }

    /// The flat input index of every output element, in output order.
    pub fn source_indices(&self, x: &[usize]) -> Vec<usize> {
        let out: Vec<usize> = x.iter().zip(&self.pads).map(|(d, p)| d + p[0] + p[1]).collect();
        let r = x.len();
        let mut strides = vec![1usize; r];
        for i in (0..r.saturating_sub(1)).rev() {
            strides[i] = strides[i + 1] * x[i + 1];
        }
        let total: usize = out.iter().product();
        let mut pos = vec![0usize; r];
        let mut v = Vec::with_capacity(total);
        for _ in 0..total {
            v.push((0..r).map(|i| self.source(i, pos[i], x[i]) * strides[i]).sum());
            for ax in (0..r).rev() {
                pos[ax] += 1;
                if pos[ax] < out[ax] {
                    break;
                }
                pos[ax] = 0;
            }
        }
        v
    }
}
