//! Gradients of Conv2D and DepthwiseConv2D (NHWC, OHWI / [1, KH, KW, C·M] weights), as direct
//! loops over the same geometry as the forward kernels. `go` is already activation-masked.

use tinyq_ir::op::{Conv2D, DepthwiseConv2D};

use crate::ops::conv::{geom, source};

fn bias_grad(go: &[f32], channels: usize) -> Vec<f32> {
    let mut db = vec![0f64; channels];
    for row in go.chunks_exact(channels) {
        db.iter_mut().zip(row).for_each(|(d, &g)| *d += g as f64);
    }
    db.into_iter().map(|v| v as f32).collect()
}

/// Returns `[dx, dw]` plus `db` when `has_bias`.
#[allow(clippy::too_many_arguments)]
pub fn conv2d(x: &[f32], xs: &[usize], w: &[f32], ws: &[usize], has_bias: bool, p: &Conv2D, os: &[usize], go: &[f32]) -> Vec<Vec<f32>> {
    let g = geom(xs, ws, p, os);
    let cin_g = ws[3];
    let groups = g.ic / cin_g;
    let cout_g = g.oc / groups;
    let mut dx = vec![0f32; x.len()];
    let mut dw = vec![0f32; w.len()];
    for b in 0..g.n {
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let gos = &go[((b * g.oh + oy) * g.ow + ox) * g.oc..][..g.oc];
                for ky in 0..g.kh {
                    for kx in 0..g.kw {
                        let Some((iy, ix)) = source(&g, p, oy, ox, ky, kx) else { continue };
                        let xo = ((b * g.ih + iy) * g.iw + ix) * g.ic;
                        for (o, &gv) in gos.iter().enumerate() {
                            if gv == 0.0 {
                                continue;
                            }
                            let grp = o / cout_g;
                            let wo = ((o * g.kh + ky) * g.kw + kx) * cin_g;
                            let xi = xo + grp * cin_g;
                            for ci in 0..cin_g {
                                dx[xi + ci] += gv * w[wo + ci];
                                dw[wo + ci] += gv * x[xi + ci];
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

/// Returns `[dx, dw]` plus `db` when `has_bias`.
#[allow(clippy::too_many_arguments)]
pub fn depthwise_conv2d(x: &[f32], xs: &[usize], w: &[f32], ws: &[usize], has_bias: bool, p: &DepthwiseConv2D, os: &[usize], go: &[f32]) -> Vec<Vec<f32>> {
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
                        for (c, &gv) in gos.iter().enumerate() {
                            dx[xo + c / m] += gv * w[wo + c];
                            dw[wo + c] += gv * x[xo + c / m];
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
