//! Ops that only move data: ONNX `Concat`, `Transpose`, `Pad`; TFLite `CONCATENATION`,
//! `TRANSPOSE`, `PAD`/`PADV2`. Under the int8 spec they keep their input's scale and zero point.

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
