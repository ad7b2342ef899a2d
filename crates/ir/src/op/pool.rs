//! 2-D pooling over NHWC: ONNX `MaxPool`/`AveragePool`/`GlobalMaxPool`, TFLite `MAX_POOL_2D`/
//! `AVERAGE_POOL_2D` (`reference/pooling.h`). Average pooling divides by the number of input
//! pixels under the window, padding excluded (ONNX `count_include_pad = 0`, TFLite's rule).

use super::{conv::Conv2D, FusedActivation, Padding};

/// Inputs: `x [N, H, W, C]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Pool2D {
    pub filter: [usize; 2],
    pub stride: [usize; 2],
    pub padding: Padding,
    pub activation: FusedActivation,
}

impl Pool2D {
    pub fn output_shape(&self, x: &[usize]) -> Result<Vec<usize>, String> {
        if x.len() != 4 {
            return Err(format!("expects a 4-D NHWC input, got {x:?}"));
        }
        let as_conv =
            Conv2D { stride: self.stride, dilation: [1, 1], padding: self.padding, activation: self.activation };
        as_conv.spatial(x, self.filter, x[3])
    }
}
