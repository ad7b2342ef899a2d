//! Max and average pooling over NHWC; padding never contributes (average divides by the number
//! of input pixels under the window).

use tinyq_ir::op::Pool2D;

use super::apply_activation;
use super::tiled::{self, PoolWindow};

fn pool(x: &[f32], s: &[usize], p: &Pool2D, so: &[usize], out: &mut [f32], max: bool) {
    let (n, ih, iw, c) = (s[0], s[1], s[2], s[3]);
    let (oh, ow) = (so[1], so[2]);
    let top = p.padding.resolve(0, ih, p.filter[0], p.stride[0], 1).expect("validated").pad_before;
    let left = p.padding.resolve(1, iw, p.filter[1], p.stride[1], 1).expect("validated").pad_before;
    let window =
        PoolWindow { input: [n, ih, iw, c], output: [oh, ow], filter: p.filter, stride: p.stride, pad: [top, left] };
    if tiled::pool(x, &window, max, p.activation, out) {
        return;
    }
    for b in 0..n {
        for oy in 0..oh {
            for ox in 0..ow {
                let y0 = (oy * p.stride[0]) as isize - top as isize;
                let x0 = (ox * p.stride[1]) as isize - left as isize;
                let ys = y0.max(0) as usize..((y0 + p.filter[0] as isize).min(ih as isize)).max(0) as usize;
                let xs = x0.max(0) as usize..((x0 + p.filter[1] as isize).min(iw as isize)).max(0) as usize;
                let o = &mut out[((b * oh + oy) * ow + ox) * c..][..c];
                o.fill(if max { f32::NEG_INFINITY } else { 0.0 });
                let mut count = 0usize;
                for iy in ys.clone() {
                    for ix in xs.clone() {
                        let xi = &x[((b * ih + iy) * iw + ix) * c..][..c];
                        if max {
                            o.iter_mut().zip(xi).for_each(|(o, &v)| *o = o.max(v));
                        } else {
                            o.iter_mut().zip(xi).for_each(|(o, &v)| *o += v);
                        }
                        count += 1;
                    }
                }
                if !max && count > 0 {
                    o.iter_mut().for_each(|v| *v /= count as f32);
                }
            }
        }
    }
    apply_activation(out, p.activation);
}

pub fn max_pool(x: &[f32], s: &[usize], p: &Pool2D, so: &[usize], out: &mut [f32]) {
    pool(x, s, p, so, out, true)
}

pub fn average_pool(x: &[f32], s: &[usize], p: &Pool2D, so: &[usize], out: &mut [f32]) {
    pool(x, s, p, so, out, false)
}
