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

impl DepthwiseConv2D {
    /// Whether CMSIS-NN's int4 depthwise kernel computes this layer as TFLM's reference kernel
    /// does, for input shape `x` (`[N, H, W, C]`) and weights shape `w` (`[1, KH, KW, C·M]`).
    ///
    /// `arm_depthwise_conv_wrapper_s4` takes the generic `arm_depthwise_conv_s4` unless the depth
    /// multiplier, the batch and both dilations are 1. With an even channel count that path
    /// indexes each weight directly; with an odd one it follows the packed nibbles with running
    /// counters ([`super::s4::odd_channel_reads_right`] replays them against TFLM's packing).
    /// Explicit padding is written as a PAD before a VALID layer on the padded input.
    pub fn int4_alike_on_cmsis_nn(&self, x: &[usize], w: &[usize]) -> bool {
        let c = &self.conv;
        let ([n, h, wd, ch], [_, kh, kw, _]) = (x, w) else { return true };
        if ch % 2 == 0 || (self.depth_multiplier == 1 && *n == 1 && c.dilation == [1, 1]) {
            return true;
        }
        let k = [*kh, *kw];
        let (input, padding) = match c.padding.canonical([*h, *wd], k, c.stride, c.dilation) {
            Padding::Explicit { top, bottom, left, right } => ([h + top + bottom, wd + left + right], Padding::Valid),
            same_or_valid => ([*h, *wd], same_or_valid),
        };
        let axes: Result<Vec<_>, _> =
            (0..2).map(|d| padding.resolve(d, input[d], k[d], c.stride[d], c.dilation[d])).collect();
        let Ok(axes) = axes else { return true };
        let geometry = super::s4::Geometry { input, kernel: k, stride: c.stride, dilation: c.dilation };
        super::s4::odd_channel_reads_right(&geometry, [axes[0], axes[1]], *ch, self.depth_multiplier)
    }
}

pub(crate) fn check_bias(bias: Option<&[usize]>, channels: usize) -> Result<(), String> {
    match bias {
        Some(b) if b != [channels] => Err(format!("bias has shape {b:?}, expected [{channels}]")),
        _ => Ok(()),
    }
}
