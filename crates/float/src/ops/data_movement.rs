//! Concat, transpose and pad: copies only.

use tinyq_ir::FusedActivation;

use super::apply_activation;

pub fn concat(xs: &[&[f32]], shapes: &[&[usize]], axis: usize, act: FusedActivation, out: &mut [f32]) {
    let outer: usize = shapes[0][..axis].iter().product();
    let mut o = 0;
    for i in 0..outer {
        for (x, s) in xs.iter().zip(shapes) {
            let block: usize = s[axis..].iter().product();
            out[o..o + block].copy_from_slice(&x[i * block..(i + 1) * block]);
            o += block;
        }
    }
    apply_activation(out, act);
}

pub fn transpose(x: &[f32], s: &[usize], perm: &[usize], out: &mut [f32]) {
    let rank = s.len();
    let mut in_strides = vec![1usize; rank];
    for i in (0..rank.saturating_sub(1)).rev() {
        in_strides[i] = in_strides[i + 1] * s[i + 1];
    }
    let os: Vec<usize> = perm.iter().map(|&p| s[p]).collect();
    let st: Vec<usize> = perm.iter().map(|&p| in_strides[p]).collect();
    let mut pos = vec![0usize; rank];
    let mut src = 0usize;
    for o in out.iter_mut() {
        *o = x[src];
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
}

pub fn pad(x: &[f32], s: &[usize], pads: &[[usize; 2]], value: f32, so: &[usize], out: &mut [f32]) {
    out.fill(value);
    let rank = s.len();
    if x.is_empty() {
        return;
    }
    let mut out_strides = vec![1usize; rank];
    for i in (0..rank.saturating_sub(1)).rev() {
        out_strides[i] = out_strides[i + 1] * so[i + 1];
    }
    let inner = s[rank - 1];
    let rows = x.len() / inner;
    let mut pos = vec![0usize; rank.saturating_sub(1)];
    for r in 0..rows {
        let base: usize =
            pos.iter().enumerate().map(|(a, &p)| (p + pads[a][0]) * out_strides[a]).sum::<usize>() + pads[rank - 1][0];
        out[base..base + inner].copy_from_slice(&x[r * inner..(r + 1) * inner]);
        for ax in (0..pos.len()).rev() {
            pos[ax] += 1;
            if pos[ax] < s[ax] {
                break;
            }
            pos[ax] = 0;
        }
    }
}

/// Source element of every output element of a nearest-neighbour resize (NHWC).
pub fn resize_nearest_sources(s: &[usize], p: &tinyq_ir::op::ResizeNearest) -> Vec<usize> {
    let (n, h, w, c) = (s[0], s[1], s[2], s[3]);
    let [oh, ow] = p.size;
    let mut idx = Vec::with_capacity(n * oh * ow * c);
    for b in 0..n {
        for y in 0..oh {
            let iy = p.source(y, h, oh);
            for x in 0..ow {
                let ix = p.source(x, w, ow);
                idx.extend((0..c).map(|k| ((b * h + iy) * w + ix) * c + k));
            }
        }
    }
    idx
}

pub fn resize_nearest(x: &[f32], s: &[usize], p: &tinyq_ir::op::ResizeNearest, out: &mut [f32]) {
    out.iter_mut().zip(resize_nearest_sources(s, p)).for_each(|(o, i)| *o = x[i]);
}

/// RESIZE_BILINEAR as TFLite's float reference: the four taps of [`ResizeNearest::bilinear_taps`]
/// weighted `(1 − dy)(1 − dx)`, `dy(1 − dx)`, `(1 − dy)dx`, `dy·dx`, summed in that order.
///
/// [`ResizeNearest::bilinear_taps`]: tinyq_ir::op::ResizeNearest::bilinear_taps
pub fn resize_bilinear(x: &[f32], s: &[usize], p: &tinyq_ir::op::ResizeNearest, out: &mut [f32]) {
    for_each_bilinear_tap(s, p, |o, taps| {
        out[o] = taps.iter().map(|&(i, w)| x[i] * w).fold(0.0, |acc, v| acc + v);
    });
}

/// Calls `f(output index, [(input index, weight); 4])` for every output element.
pub fn for_each_bilinear_tap(
    s: &[usize],
    p: &tinyq_ir::op::ResizeNearest,
    mut f: impl FnMut(usize, [(usize, f32); 4]),
) {
    let (n, h, w, c) = (s[0], s[1], s[2], s[3]);
    let [oh, ow] = p.size;
    let mut o = 0;
    for b in 0..n {
        for y in 0..oh {
            let (y0, y1, dy) = p.bilinear_taps(y, h, oh);
            for xo in 0..ow {
                let (x0, x1, dx) = p.bilinear_taps(xo, w, ow);
                let at = |yy: usize, xx: usize, k: usize| ((b * h + yy) * w + xx) * c + k;
                for k in 0..c {
                    f(
                        o,
                        [
                            (at(y0, x0, k), (1.0 - dy) * (1.0 - dx)),
                            (at(y1, x0, k), dy * (1.0 - dx)),
                            (at(y0, x1, k), (1.0 - dy) * dx),
                            (at(y1, x1, k), dy * dx),
                        ],
                    );
                    o += 1;
                }
            }
        }
    }
}
