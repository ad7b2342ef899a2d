//! Gradients of Sum and Mean: every input element receives its output's gradient (divided by
//! the count for Mean).

pub fn mean(s: &[usize], axes: &[usize], go: &[f32]) -> Vec<f32> {
    let count: usize = axes.iter().map(|&a| s[a]).product();
    spread(s, axes, go, 1.0 / count.max(1) as f32)
}

pub fn sum(s: &[usize], axes: &[usize], go: &[f32]) -> Vec<f32> {
    spread(s, axes, go, 1.0)
}

/// Each input element's output gradient times `factor`.
fn spread(s: &[usize], axes: &[usize], go: &[f32], factor: f32) -> Vec<f32> {
    let rank = s.len();
    let mut out_strides = vec![0usize; rank];
    let mut stride = 1;
    for i in (0..rank).rev() {
        if !axes.contains(&i) {
            out_strides[i] = stride;
            stride *= s[i];
        }
    }
    let n: usize = s.iter().product();
    let mut dx = vec![0f32; n];
    let mut pos = vec![0usize; rank];
    let mut o = 0usize;
    for d in dx.iter_mut() {
        *d = go[o] * factor;
        for ax in (0..rank).rev() {
            pos[ax] += 1;
            o += out_strides[ax];
            if pos[ax] < s[ax] {
                break;
            }
            o -= out_strides[ax] * s[ax];
            pos[ax] = 0;
        }
    }
    dx
}

/// Max over axes: each output gradient goes to the first input holding the maximum (scan order).
pub fn reduce_max(x: &[f32], s: &[usize], axes: &[usize], output: &[f32], go: &[f32]) -> Vec<f32> {
    let mut g = vec![0f32; x.len()];
    let mut taken = vec![false; output.len()];
    for (i, o) in crate::ops::reduce::reduce_targets(s, axes).into_iter().enumerate() {
        if !taken[o] && x[i] == output[o] {
            taken[o] = true;
            g[i] = go[o];
        }
    }
    g
}
