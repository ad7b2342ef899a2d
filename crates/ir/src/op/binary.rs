//! Element-wise arithmetic with numpy broadcasting: ONNX `Add`/`Sub`/`Mul`
//! (<https://onnx.ai/onnx/repo-docs/Broadcasting.html>), TFLite `ADD`/`SUB`/`MUL`.

use super::FusedActivation;

/// Inputs: `a`, `b` (broadcast against each other).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Binary {
    pub activation: FusedActivation,
}

/// The numpy broadcast of two shapes.
pub fn broadcast_shapes(a: &[usize], b: &[usize]) -> Result<Vec<usize>, String> {
    let rank = a.len().max(b.len());
    let dim = |s: &[usize], i: usize| if i + s.len() >= rank { s[i + s.len() - rank] } else { 1 };
    (0..rank)
        .map(|i| match (dim(a, i), dim(b, i)) {
            (x, y) if x == y => Ok(x),
            (1, y) => Ok(y),
            (x, 1) => Ok(x),
            _ => Err(format!("shapes {a:?} and {b:?} do not broadcast")),
        })
        .collect()
}
