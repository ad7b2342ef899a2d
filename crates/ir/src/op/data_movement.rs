//! Ops that only move data: ONNX `Concat`, `Transpose`, `Pad`, `Resize`/`Upsample` (nearest);
//! TFLite `CONCATENATION`, `TRANSPOSE`, `PAD`/`PADV2`, `RESIZE_NEAREST_NEIGHBOR`. Under the int8
//! spec they keep their input's scale and zero point.

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
