//! Dense layer: `out[r, o] = sum_i x[r, i] · w[o, i] + bias[o]`.

use tinyq_ir::FusedActivation;

pub fn fully_connected(
    x: &[f32],
    w: &[f32],
    ws: &[usize],
    bias: Option<&[f32]>,
    act: FusedActivation,
    out: &mut [f32],
) {
    super::tiled::fully_connected(x, w, (ws[0], ws[1]), bias, act, out);
}
