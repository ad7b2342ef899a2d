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

/// `(outer, reduced, inner)` sizes when the reduced axes are one contiguous run: the input is then
/// `[outer, reduced, inner]` and the output `[outer, inner]`.
fn contiguous(s: &[usize], axes: &[usize]) -> Option<(usize, usize, usize)> {
    let (&lo, &hi) = (axes.iter().min()?, axes.iter().max()?);
    let mut sorted = axes.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    (sorted.len() == hi - lo + 1 && hi < s.len())
        .then(|| (s[..lo].iter().product(), s[lo..=hi].iter().product(), s[hi + 1..].iter().product()))
}

/// Each output's sum, its terms added in the order of the input (as [`reduce_targets`] visits
/// them), so both paths give the same values.
fn sum_f64(x: &[f32], s: &[usize], axes: &[usize], n_out: usize) -> Vec<f64> {
    let mut acc = vec![0f64; n_out];
    if let Some((outer, reduced, inner)) = contiguous(s, axes) {
        for (a, acc) in acc.chunks_exact_mut(inner.max(1)).enumerate().take(outer) {
            for r in 0..reduced {
                let row = &x[(a * reduced + r) * inner..][..inner];
                acc.iter_mut().zip(row).for_each(|(o, &v)| *o += v as f64);
            }
        }
        return acc;
    }
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
    if let Some((outer, reduced, inner)) = contiguous(s, axes) {
        for (a, out) in out.chunks_exact_mut(inner.max(1)).enumerate().take(outer) {
            for r in 0..reduced {
                let row = &x[(a * reduced + r) * inner..][..inner];
                out.iter_mut().zip(row).for_each(|(o, &v)| {
                    if v > *o {
                        *o = v;
                    }
                });
            }
        }
        return;
    }
    for (&v, o) in x.iter().zip(reduce_targets(s, axes)) {
        if v > out[o] {
            out[o] = v;
        }
    }
}
