//! Fully connected (dense) layer: ONNX `Gemm` and `MatMul` with a constant right-hand side,
//! TFLite `FULLY_CONNECTED` (`reference/fully_connected.h`).

use super::FusedActivation;

/// Inputs: `x [..., in]`, `w [out, in]`, optional `bias [out]`. The output is `[rows, out]`
/// with `rows = numel(x) / in`, or `x`'s leading dims followed by `out` with `keep_num_dims`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FullyConnected {
    pub activation: FusedActivation,
    pub keep_num_dims: bool,
}

impl FullyConnected {
    pub fn output_shape(&self, x: &[usize], w: &[usize], bias: Option<&[usize]>) -> Result<Vec<usize>, String> {
        if w.len() != 2 {
            return Err(format!("weights must be [out, in], got {w:?}"));
        }
        let inner = *x.last().ok_or("input is a scalar")?;
        if inner != w[1] {
            return Err(format!("input {x:?} has {inner} features, weights {w:?} expect {}", w[1]));
        }
        super::conv::check_bias(bias, w[0])?;
        if self.keep_num_dims {
            let mut s = x.to_vec();
            *s.last_mut().unwrap() = w[0];
            Ok(s)
        } else {
            Ok(vec![crate::numel(x) / inner, w[0]])
        }
    }
}
