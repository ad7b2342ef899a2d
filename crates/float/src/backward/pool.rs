//! Gradients of max and average pooling over NHWC. Max pooling routes each output's gradient to
//! the first maximum of its window in the forward's scan order (rows, then columns); average
//! pooling spreads it over the input pixels under the window (padding excluded from the count).
//! `go` is already activation-masked.

use tinyq_ir::op::Pool2D;

fn pool(x: Option<&[f32]>, s: &[usize], p: &Pool2D, so: &[usize], go: &[f32]) -> Vec<f32> {
    let (n, ih, iw, c) = (s[0], s[1], s[2], s[3]);
    let (oh, ow) = (so[1], so[2]);
    let top = p.padding.resolve(0, ih, p.filter[0], p.stride[0], 1).expect("validated").pad_before;
    let left = p.padding.resolve(1, iw, p.filter[1], p.stride[1], 1).expect("validated").pad_before;
    let mut dx = vec![0f32; n * ih * iw * c];
    for b in 0..n {
        for oy in 0..oh {
            for ox in 0..ow {
                let y0 = (oy * p.stride[0]) as isize - top as isize;
                let x0 = (ox * p.stride[1]) as isize - left as isize;
                let ys = y0.max(0) as usize..((y0 + p.filter[0] as isize).min(ih as isize)).max(0) as usize;
                let xs = x0.max(0) as usize..((x0 + p.filter[1] as isize).min(iw as isize)).max(0) as usize;
                let gos = &go[((b * oh + oy) * ow + ox) * c..][..c];
                match x {
                    Some(x) => {
                        for (ch, &gv) in gos.iter().enumerate() {
                            let mut best: Option<(f32, usize)> = None;
                            for iy in ys.clone() {
                                for ix in xs.clone() {
                                    let i = ((b * ih + iy) * iw + ix) * c + ch;
                                    if best.is_none_or(|(m, _)| x[i] > m) {
                                        best = Some((x[i], i));
                                    }
                                }
                            }
                            if let Some((_, i)) = best {
                                dx[i] += gv;
                            }
                        }
                    }
                    None => {
                        let count = ys.len() * xs.len();
                        if count == 0 {
                            continue;
                        }
                        let inv = 1.0 / count as f32;
                        for iy in ys.clone() {
                            for ix in xs.clone() {
                                let d = &mut dx[((b * ih + iy) * iw + ix) * c..][..c];
                                d.iter_mut().zip(gos).for_each(|(d, &g)| *d += g * inv);
                            }
                        }
                    }
                }
            }
        }
    }
    dx
}

pub fn max_pool(x: &[f32], s: &[usize], p: &Pool2D, so: &[usize], go: &[f32]) -> Vec<f32> {
    pool(Some(x), s, p, so, go)
}

pub fn average_pool(s: &[usize], p: &Pool2D, so: &[usize], go: &[f32]) -> Vec<f32> {
    pool(None, s, p, so, go)
}
