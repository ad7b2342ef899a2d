//! Gradients of Conv2D (two GEMMs over the forward pass's im2col patches) and DepthwiseConv2D (a
//! direct loop), NHWC with OHWI / [1, KH, KW, C·M] weights, over the same geometry as the forward
//! kernels. `go` is already activation-masked.

use tinyq_ir::op::{Conv2D, DepthwiseConv2D};

use crate::ops::conv::{geom, source};
use crate::ops::matmul;

fn bias_grad(go: &[f32], channels: usize) -> Vec<f32> {
    let mut db = vec![0f64; channels];
    for row in go.chunks_exact(channels) {
        db.iter_mut().zip(row).for_each(|(d, &g)| *d += g as f64);
    }
    db.into_iter().map(|v| v as f32).collect()
}

/// Returns `[dx, dw]` plus `db` when `has_bias`. Per image and group, with `P` the im2col
/// patches of the forward pass (pixels × taps) and `G` the output gradient (pixels × channels):
/// `dW = Gᵀ·P` and `dP = G·W`, whose rows are scattered back onto the input pixels they came from.
#[allow(clippy::too_many_arguments)]
pub fn conv2d(
    x: &[f32],
    xs: &[usize],
    w: &[f32],
    ws: &[usize],
    has_bias: bool,
    p: &Conv2D,
    os: &[usize],
    go: &[f32],
) -> Vec<Vec<f32>> {
    let g = geom(xs, ws, p, os);
    let cin_g = ws[3];
    let groups = g.ic / cin_g;
    let cout_g = g.oc / groups;
    let k = g.kh * g.kw * cin_g;
    let pixels = g.oh * g.ow;
    let mut dx = vec![0f32; x.len()];
    let mut dw = vec![0f32; w.len()];
    let mut patch = vec![0f32; pixels * k];
    let mut dpatch = vec![0f32; pixels * k];
    let mut dw_g = vec![0f32; cout_g * k];
    // The input offset of every (pixel, tap) pair, or None where the tap falls in the padding.
    let taps: Vec<Option<usize>> = (0..pixels)
        .flat_map(|px| (0..g.kh * g.kw).map(move |t| (px, t)))
        .map(|(px, t)| source(&g, p, px / g.ow, px % g.ow, t / g.kw, t % g.kw).map(|(iy, ix)| (iy * g.iw + ix) * g.ic))
        .collect();
    for b in 0..g.n {
        let image = b * g.ih * g.iw * g.ic;
        let gb = &go[b * pixels * g.oc..(b + 1) * pixels * g.oc];
        for grp in 0..groups {
            for (row, tap) in patch.chunks_exact_mut(cin_g).zip(&taps) {
                match tap {
                    Some(s) => row.copy_from_slice(&x[image + s + grp * cin_g..][..cin_g]),
                    None => row.fill(0.0),
                }
            }
            let w_g = &w[grp * cout_g * k..(grp + 1) * cout_g * k];
            matmul(cout_g, k, pixels, &mut dw_g, k, &gb[grp * cout_g..], 1, g.oc, &patch, k, 1);
            dw[grp * cout_g * k..(grp + 1) * cout_g * k].iter_mut().zip(&dw_g).for_each(|(d, v)| *d += v);
            matmul(pixels, k, cout_g, &mut dpatch, k, &gb[grp * cout_g..], g.oc, 1, w_g, k, 1);
            for (row, tap) in dpatch.chunks_exact(cin_g).zip(&taps) {
                if let Some(s) = tap {
                    dx[image + s + grp * cin_g..][..cin_g].iter_mut().zip(row).for_each(|(d, v)| *d += v);
                }
            }
        }
    }
    let mut grads = vec![dx, dw];
    if has_bias {
        grads.push(bias_grad(go, g.oc));
    }
    grads
}

/// Returns `[dx, dw]` plus `db` when `has_bias`.
#[allow(clippy::too_many_arguments)]
pub fn depthwise_conv2d(
    x: &[f32],
    xs: &[usize],
    w: &[f32],
    ws: &[usize],
    has_bias: bool,
    p: &DepthwiseConv2D,
    os: &[usize],
    go: &[f32],
) -> Vec<Vec<f32>> {
    let g = geom(xs, ws, &p.conv, os);
    let m = p.depth_multiplier.max(1);
    let mut dx = vec![0f32; x.len()];
    let mut dw = vec![0f32; w.len()];
    for b in 0..g.n {
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let gos = &go[((b * g.oh + oy) * g.ow + ox) * g.oc..][..g.oc];
                for ky in 0..g.kh {
                    for kx in 0..g.kw {
                        let Some((iy, ix)) = source(&g, &p.conv, oy, ox, ky, kx) else { continue };
                        let xo = ((b * g.ih + iy) * g.iw + ix) * g.ic;
                        let wo = (ky * g.kw + kx) * g.oc;
                        if m == 1 {
                            let (dxs, xs) = (&mut dx[xo..xo + g.oc], &x[xo..xo + g.oc]);
                            let (dws, ws) = (&mut dw[wo..wo + g.oc], &w[wo..wo + g.oc]);
                            for c in 0..g.oc {
                                dxs[c] += gos[c] * ws[c];
                                dws[c] += gos[c] * xs[c];
                            }
                        } else {
                            for (c, &gv) in gos.iter().enumerate() {
                                dx[xo + c / m] += gv * w[wo + c];
                                dw[wo + c] += gv * x[xo + c / m];
                            }
                        }
                    }
                }
            }
        }
    }
    let mut grads = vec![dx, dw];
    if has_bias {
        grads.push(bias_grad(go, g.oc));
    }
    grads
}
