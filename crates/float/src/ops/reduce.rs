//! Sum and mean over a set of axes (accumulated in f64; the mean divided once), and max.

pub fn mean(x: &[f32], s: &[usize], axes: &[usize], out: &mut [f32]) {
    let count: usize = axes.iter().map(|&a| s[a]).product();
    let acc = sum_f64(x, s, axes, out.len());
    out.iter_mut().zip(acc).for_each(|(o, a)| *o = (a / count.max(1) as f64) as f32);
}

pub fn sum(x: &[f32], s: &[usize], axes: &[usize], out: &mut [f32]) {
    let acc = sum_f64(x, s, axes, out.len());
    out.iter_mut().zip(acc).for_each(|(o, a)| *o = a as f32);
}

fn sum_f64(x: &[f32], s: &[usize], axes: &[usize], n_out: usize) -> Vec<f64> {
    let mut acc = vec![0f64; n_out];
    for (&v, o) in x.iter().zip(reduce_targets(s, axes)) {
        acc[o] += v as f64;
    }
    acc
}

/// Index of the output element each input element reduces into.
pub fn reduce_targets(s: &[usize], axes: &[usize]) -> Vec<usize> {
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
    let mut pos = vec![0usize; rank];
    let mut targets = Vec::with_capacity(n);
    let mut o = 0usize;
    for _ in 0..n {
        targets.push(o);
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
    targets
}

/// Max over a set of axes.
pub fn reduce_max(x: &[f32], s: &[usize], axes: &[usize], out: &mut [f32]) {
    out.fill(f32::NEG_INFINITY);
    for (&v, o) in x.iter().zip(reduce_targets(s, axes)) {
        if v > out[o] {
            out[o] = v;
        }
    }
}
