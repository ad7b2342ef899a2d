//! Gradients of concat, transpose and pad: the forward copies, run backwards.

/// Splits the (already activation-masked) output gradient back into the inputs.
pub fn concat(shapes: &[&[usize]], axis: usize, go: &[f32]) -> Vec<Vec<f32>> {
    let outer: usize = shapes[0][..axis].iter().product();
    let mut grads: Vec<Vec<f32>> = shapes.iter().map(|s| vec![0f32; s.iter().product()]).collect();
    let mut o = 0;
    for i in 0..outer {
        for (g, s) in grads.iter_mut().zip(shapes) {
            let block: usize = s[axis..].iter().product();
            g[i * block..(i + 1) * block].copy_from_slice(&go[o..o + block]);
            o += block;
        }
    }
    grads
}

pub fn transpose(s: &[usize], perm: &[usize], go: &[f32]) -> Vec<f32> {
    let rank = s.len();
    let mut in_strides = vec![1usize; rank];
    for i in (0..rank.saturating_sub(1)).rev() {
        in_strides[i] = in_strides[i + 1] * s[i + 1];
    }
    let os: Vec<usize> = perm.iter().map(|&p| s[p]).collect();
    let st: Vec<usize> = perm.iter().map(|&p| in_strides[p]).collect();
    let mut dx = vec![0f32; s.iter().product()];
    let mut pos = vec![0usize; rank];
    let mut src = 0usize;
    for &g in go {
        dx[src] += g;
        for ax in (0..rank).rev() {
            pos[ax] += 1;
            src += st[ax];
            if pos[ax] < os[ax] {
                break;
            }
            src -= st[ax] * os[ax];
            pos[ax] = 0;
        }
    }
    dx
}

/// Gathers the interior of the output gradient (the pad value is a parameter, not an input).
pub fn pad(s: &[usize], pads: &[[usize; 2]], so: &[usize], go: &[f32]) -> Vec<f32> {
    let rank = s.len();
    let n: usize = s.iter().product();
    let mut dx = vec![0f32; n];
    if n == 0 {
        return dx;
    }
    let mut out_strides = vec![1usize; rank];
    for i in (0..rank.saturating_sub(1)).rev() {
        out_strides[i] = out_strides[i + 1] * so[i + 1];
    }
    let inner = s[rank - 1];
    let rows = n / inner;
    let mut pos = vec![0usize; rank.saturating_sub(1)];
    for r in 0..rows {
        let base: usize =
            pos.iter().enumerate().map(|(a, &p)| (p + pads[a][0]) * out_strides[a]).sum::<usize>() + pads[rank - 1][0];
        dx[r * inner..(r + 1) * inner].copy_from_slice(&go[base..base + inner]);
        for ax in (0..pos.len()).rev() {
            pos[ax] += 1;
            if pos[ax] < s[ax] {
                break;
            }
            pos[ax] = 0;
        }
    }
    dx
}

/// Nearest-neighbour resize: each output gradient goes back to its source element.
pub fn resize_nearest(s: &[usize], p: &tinyq_ir::op::ResizeNearest, go: &[f32]) -> Vec<f32> {
    let mut g = vec![0f32; s.iter().product()];
    for (o, i) in crate::ops::data_movement::resize_nearest_sources(s, p).into_iter().enumerate() {
        g[i] += go[o];
    }
    g
}

/// RESIZE_BILINEAR: each output gradient back to its four taps with their weights.
pub fn resize_bilinear(s: &[usize], p: &tinyq_ir::op::ResizeNearest, go: &[f32]) -> Vec<f32> {
    let mut g = vec![0f32; s.iter().product()];
    crate::ops::data_movement::for_each_bilinear_tap(s, p, |o, taps| taps.iter().for_each(|&(i, w)| g[i] += go[o] * w));
    g
}

/// STRIDED_SLICE, MIRROR_PAD: each output gradient back to the input element it was copied from
/// (`sources`, in output order), summed where several outputs read one element; the rest 0.
pub fn gather_back(sx: &[usize], sources: &[usize], go: &[f32]) -> Vec<f32> {
    let mut dx = vec![0f32; sx.iter().product()];
    sources.iter().zip(go).for_each(|(&i, &g)| dx[i] += g);
    dx
}
