//! Element-wise binary ops with numpy broadcasting.

use tinyq_ir::FusedActivation;

use super::apply_activation;

/// Flat offset into an input of shape `s` (right-aligned against `out`) for each output index.
fn strides_for(s: &[usize], out: &[usize]) -> Vec<usize> {
    let rank = out.len();
    let mut strides = vec![0usize; rank];
    let mut acc = 1;
    for i in (0..s.len()).rev() {
        let o = i + rank - s.len();
        strides[o] = if s[i] == 1 { 0 } else { acc };
        acc *= s[i];
    }
    strides
}

#[allow(clippy::too_many_arguments)]
pub fn binary(
    a: &[f32],
    sa: &[usize],
    b: &[f32],
    sb: &[usize],
    so: &[usize],
    act: FusedActivation,
    f: impl Fn(f32, f32) -> f32,
    out: &mut [f32],
) {
    if sa == sb {
        out.iter_mut().zip(a.iter().zip(b)).for_each(|(o, (&x, &y))| *o = f(x, y));
    } else if b.len() == 1 {
        out.iter_mut().zip(a).for_each(|(o, &x)| *o = f(x, b[0]));
    } else if a.len() == 1 {
        out.iter_mut().zip(b).for_each(|(o, &y)| *o = f(a[0], y));
    } else {
        let (ta, tb) = (strides_for(sa, so), strides_for(sb, so));
        let rank = so.len();
        let mut pos = vec![0usize; rank];
        let (mut ia, mut ib) = (0usize, 0usize);
        for o in out.iter_mut() {
            *o = f(a[ia], b[ib]);
            for ax in (0..rank).rev() {
                pos[ax] += 1;
                ia += ta[ax];
                ib += tb[ax];
                if pos[ax] < so[ax] {
                    break;
                }
                ia -= ta[ax] * so[ax];
                ib -= tb[ax] * so[ax];
                pos[ax] = 0;
            }
        }
    }
    apply_activation(out, act);
}
