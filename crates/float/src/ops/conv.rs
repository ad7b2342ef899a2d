//! Convolutions over NHWC. One group, and depthwise with multiplier 1 over whole tiles of
//! channels, run the register-tiled kernels of [`super::tiled`]; grouped convolutions run im2col
//! per group followed by one GEMM (or the input itself when pointwise), other depthwise
//! convolutions a direct loop.

use tinyq_ir::op::{Conv2D, DepthwiseConv2D};

use super::tiled::Packed;
use super::{apply_activation, matmul};

/// Resolved geometry of one convolution (shared with the backward pass).
pub(crate) struct Geom {
    pub n: usize,
    pub ih: usize,
    pub iw: usize,
    pub ic: usize,
    pub oh: usize,
    pub ow: usize,
    pub oc: usize,
    pub kh: usize,
    pub kw: usize,
    pub pad_top: usize,
    pub pad_left: usize,
}

pub(crate) fn geom(x: &[usize], w: &[usize], p: &Conv2D, out: &[usize]) -> Geom {
    let h = p.padding.resolve(0, x[1], w[1], p.stride[0], p.dilation[0]).expect("validated shapes");
    let wd = p.padding.resolve(1, x[2], w[2], p.stride[1], p.dilation[1]).expect("validated shapes");
    Geom {
        n: x[0],
        ih: x[1],
        iw: x[2],
        ic: x[3],
        oh: out[1],
        ow: out[2],
        oc: out[3],
        kh: w[1],
        kw: w[2],
        pad_top: h.pad_before,
        pad_left: wd.pad_before,
    }
}

/// Input row and column for output pixel (oy, ox) and kernel tap (ky, kx), if inside the image.
#[inline]
pub(crate) fn source(g: &Geom, p: &Conv2D, oy: usize, ox: usize, ky: usize, kx: usize) -> Option<(usize, usize)> {
    let iy = (oy * p.stride[0] + ky * p.dilation[0]).checked_sub(g.pad_top)?;
    let ix = (ox * p.stride[1] + kx * p.dilation[1]).checked_sub(g.pad_left)?;
    (iy < g.ih && ix < g.iw).then_some((iy, ix))
}

/// Whether [`conv2d`] runs the tiled kernel (and so can use weights packed ahead).
pub fn is_tiled(xs: &[usize], ws: &[usize]) -> bool {
    ws[3] == xs[3]
}

/// `packed`: the weights and bias packed ahead for the tiled kernel ([`is_tiled`]), if they are.
#[allow(clippy::too_many_arguments)]
pub fn conv2d(
    x: &[f32],
    xs: &[usize],
    (w, ws): (&[f32], &[usize]),
    bias: Option<&[f32]>,
    packed: Option<&Packed>,
    p: &Conv2D,
    os: &[usize],
    out: &mut [f32],
) {
    let g = geom(xs, ws, p, os);
    let cin_g = ws[3];
    if is_tiled(xs, ws) {
        return super::tiled::conv2d(x, &g, p, w, bias, packed, out);
    }
    let groups = g.ic / cin_g;
    let cout_g = g.oc / groups;
    let k = g.kh * g.kw * cin_g;
    let pixels = g.oh * g.ow;
    let pointwise = g.kh == 1
        && g.kw == 1
        && p.stride == [1, 1]
        && g.pad_top == 0
        && g.pad_left == 0
        && g.oh == g.ih
        && g.ow == g.iw;
    // The im2col patch: every element is written (a copy of the input or a zero of the padding)
    // before the GEMM reads it, so the thread's buffer is reused as it is, without zeroing.
    let len = if pointwise { 0 } else { pixels * k };
    PATCH.with(|buf| {
        let mut buf = buf.borrow_mut();
        if buf.len() < len {
            buf.resize(len, 0.0);
        }
        conv2d_with(x, w, bias, p, &g, (cin_g, groups, cout_g, k, pointwise), &mut buf[..len], out)
    });
}

thread_local! {
    /// Each thread's im2col buffer, kept between calls: calibration and the `auto` search run
    /// thousands of convolutions, and a fresh zeroed patch per call cost more than its copies.
    static PATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// [`conv2d`] with its geometry resolved and an im2col buffer of `pixels × k` values.
#[allow(clippy::too_many_arguments)]
fn conv2d_with(
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    p: &Conv2D,
    g: &Geom,
    (cin_g, groups, cout_g, k, pointwise): (usize, usize, usize, usize, bool),
    patch: &mut [f32],
    out: &mut [f32],
) {
    let pixels = g.oh * g.ow;
    for b in 0..g.n {
        let xb = &x[b * g.ih * g.iw * g.ic..(b + 1) * g.ih * g.iw * g.ic];
        let ob = &mut out[b * pixels * g.oc..(b + 1) * pixels * g.oc];
        for grp in 0..groups {
            let (lhs, lhs_rs): (&[f32], usize) = if pointwise {
                (&xb[grp * cin_g..], g.ic)
            } else {
                im2col(xb, g, p, grp, cin_g, patch);
                (&*patch, k)
            };
            matmul(pixels, cout_g, k, &mut ob[grp * cout_g..], g.oc, lhs, lhs_rs, 1, &w[grp * cout_g * k..], 1, k);
        }
    }
    add_bias(out, bias, g.oc);
    apply_activation(out, p.activation);
}

/// The im2col rows of group `grp`: per output pixel, the `kh × kw × cin_g` input values its
/// kernel covers (zeros where it covers padding), in the weights' `(ky, kx, c)` order.
fn im2col(xb: &[f32], g: &Geom, p: &Conv2D, grp: usize, cin_g: usize, patch: &mut [f32]) {
    let k = g.kh * g.kw * cin_g;
    // With one group and no dilation, a kernel row inside the image is one contiguous run of
    // `kw × ic` input values: one copy instead of `kw`.
    let runs = cin_g == g.ic && p.dilation[1] == 1;
    for oy in 0..g.oh {
        for ox in 0..g.ow {
            let row = &mut patch[(oy * g.ow + ox) * k..(oy * g.ow + ox + 1) * k];
            for ky in 0..g.kh {
                let taps = &mut row[ky * g.kw * cin_g..(ky + 1) * g.kw * cin_g];
                if runs {
                    let first = source(g, p, oy, ox, ky, 0);
                    let last = source(g, p, oy, ox, ky, g.kw - 1);
                    if let (Some((iy, ix)), Some(_)) = (first, last) {
                        let s = (iy * g.iw + ix) * g.ic;
                        taps.copy_from_slice(&xb[s..s + taps.len()]);
                        continue;
                    }
                }
                for (kx, dst) in taps.chunks_exact_mut(cin_g).enumerate() {
                    match source(g, p, oy, ox, ky, kx) {
                        Some((iy, ix)) => {
                            let s = (iy * g.iw + ix) * g.ic + grp * cin_g;
                            dst.copy_from_slice(&xb[s..s + cin_g]);
                        }
                        None => dst.fill(0.0),
                    }
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub fn depthwise_conv2d(
    x: &[f32],
    xs: &[usize],
    w: &[f32],
    ws: &[usize],
    bias: Option<&[f32]>,
    p: &DepthwiseConv2D,
    os: &[usize],
    out: &mut [f32],
) {
    let g = geom(xs, ws, &p.conv, os);
    let m = p.depth_multiplier;
    if m == 1 && super::tiled::depthwise_conv2d(x, &g, &p.conv, w, bias, out) {
        return;
    }
    for b in 0..g.n {
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let o = &mut out[((b * g.oh + oy) * g.ow + ox) * g.oc..][..g.oc];
                o.fill(0.0);
                for ky in 0..g.kh {
                    for kx in 0..g.kw {
                        let Some((iy, ix)) = source(&g, &p.conv, oy, ox, ky, kx) else { continue };
                        let xi = &x[((b * g.ih + iy) * g.iw + ix) * g.ic..][..g.ic];
                        let wi = &w[(ky * g.kw + kx) * g.oc..][..g.oc];
                        if m == 1 {
                            for ((o, &xv), &wv) in o.iter_mut().zip(xi).zip(wi) {
                                *o += xv * wv;
                            }
                        } else {
                            for (c, o) in o.iter_mut().enumerate() {
                                *o += xi[c / m] * wi[c];
                            }
                        }
                    }
                }
            }
        }
    }
    add_bias(out, bias, g.oc);
    apply_activation(out, p.conv.activation);
}

pub(crate) fn add_bias(out: &mut [f32], bias: Option<&[f32]>, channels: usize) {
    if let Some(b) = bias {
        for row in out.chunks_exact_mut(channels) {
            row.iter_mut().zip(b).for_each(|(o, b)| *o += b);
        }
    }
}
