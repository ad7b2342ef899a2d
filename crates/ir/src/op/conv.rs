//! 2-D convolutions over NHWC activations.
//!
//! Specs: ONNX `Conv` (<https://onnx.ai/onnx/operators/onnx__Conv.html>), TFLite `CONV_2D` and
//! `DEPTHWISE_CONV_2D` (`tensorflow/lite/kernels/internal/reference/conv.h`,
//! `depthwiseconv_float.h`). A Conv1D imports as a Conv2D with height 1.

use super::{FusedActivation, Padding};

/// Inputs: `x [N, H, W, Cin]`, `w [Cout, KH, KW, Cin / groups]` (OHWI), optional `bias [Cout]`.
/// Grouped convolution is implied by `Cin / w[3]` (as in TFLite CONV_2D).
#[derive(Clone, Debug, PartialEq)]
pub struct Conv2D {
    pub stride: [usize; 2],
    pub dilation: [usize; 2],
    pub padding: Padding,
    pub activation: FusedActivation,
}

/// Inputs: `x [N, H, W, C]`, `w [1, KH, KW, C * depth_multiplier]`, optional `bias [C * M]`.
#[derive(Clone, Debug, PartialEq)]
pub struct DepthwiseConv2D {
    pub conv: Conv2D,
    pub depth_multiplier: usize,
}

impl Conv2D {
    /// Groups implied by the input and weight shapes.
    pub fn groups(x: &[usize], w: &[usize]) -> usize {
        if w.len() == 4 && w[3] > 0 {
            x[3] / w[3]
        } else {
            1
        }
    }

    pub fn output_shape(&self, x: &[usize], w: &[usize], bias: Option<&[usize]>) -> Result<Vec<usize>, String> {
        if x.len() != 4 || w.len() != 4 {
            return Err(format!("expects 4-D input and weights, got {x:?} and {w:?}"));
        }
        if w[3] == 0 || !x[3].is_multiple_of(w[3]) {
            return Err(format!("input channels {} are not a multiple of the weights' {}", x[3], w[3]));
        }
        let groups = x[3] / w[3];
        if !w[0].is_multiple_of(groups) {
            return Err(format!("output channels {} are not a multiple of groups {groups}", w[0]));
        }
        check_bias(bias, w[0])?;
        self.spatial(x, [w[1], w[2]], w[0])
    }

    pub(crate) fn spatial(&self, x: &[usize], k: [usize; 2], out_c: usize) -> Result<Vec<usize>, String> {
        let h = self.padding.resolve(0, x[1], k[0], self.stride[0], self.dilation[0])?;
        let w = self.padding.resolve(1, x[2], k[1], self.stride[1], self.dilation[1])?;
        Ok(vec![x[0], h.out, w.out, out_c])
    }
}

impl DepthwiseConv2D {
    pub fn output_shape(&self, x: &[usize], w: &[usize], bias: Option<&[usize]>) -> Result<Vec<usize>, String> {
        if x.len() != 4 || w.len() != 4 || w[0] != 1 {
            return Err(format!("expects 4-D input and [1, KH, KW, C*M] weights, got {x:?} and {w:?}"));
        }
        if w[3] != x[3] * self.depth_multiplier {
            return Err(format!(
                "weights have {} channels, input {} × depth multiplier {}",
                w[3], x[3], self.depth_multiplier
            ));
        }
        check_bias(bias, w[3])?;
        self.conv.spatial(x, [w[1], w[2]], w[3])
    }
}

pub(crate) fn check_bias(bias: Option<&[usize]>, channels: usize) -> Result<(), String> {
    match bias {
        Some(b) if b != [channels] => Err(format!("bias has shape {b:?}, expected [{channels}]")),
        _ => Ok(()),
    }
}
