//! Dense layer: `out[r, o] = sum_i x[r, i] · w[o, i] + bias[o]`.

use tinyq_ir::FusedActivation;

use super::{apply_activation, conv::add_bias, matmul};

pub fn fully_connected(
    x: &[f32],
    w: &[f32],
    ws: &[usize],
    bias: Option<&[f32]>,
    act: FusedActivation,
    out: &mut [f32],
) {
    let (units, inner) = (ws[0], ws[1]);
    let rows = x.len() / inner;
    matmul(rows, units, inner, out, units, x, inner, 1, w, 1, inner);
    add_bias(out, bias, units);
    apply_activation(out, act);
}
