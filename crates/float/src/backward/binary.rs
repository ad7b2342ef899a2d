//! Gradients of Add/Sub/Mul with numpy broadcasting: reduced over the broadcast axes. The
//! output gradient passed in is already masked by the fused activation.

/// Flat offset into an input of shape `s` (right-aligned against `out`) for each output axis.
fn strides_for(s: &[usize], out: &[usize]) -> Vec<usize> {
    let rank = out.len();
    let mut strides = vec![0usize; rank];
    let mut acc = 1;
    for i in (0..s.len()).rev() {
        let o = i + rank - s.len();
        strides[o] = if s[i] == 1 { 0 } else { acc };
        acc *= s[i];
    }
    strides
}

/// Calls `f(output index, a index, b index)` for every output element.
fn walk(sa: &[usize], sb: &[usize], so: &[usize], mut f: impl FnMut(usize, usize, usize)) {
    let n: usize = so.iter().product();
    let (ta, tb) = (strides_for(sa, so), strides_for(sb, so));
    let rank = so.len();
    let mut pos = vec![0usize; rank];
    let (mut ia, mut ib) = (0usize, 0usize);
    for o in 0..n {
        f(o, ia, ib);
        for ax in (0..rank).rev() {
            pos[ax] += 1;
            ia += ta[ax];
            ib += tb[ax];
            if pos[ax] < so[ax] {
                break;
            }
            ia -= ta[ax] * so[ax];
            ib -= tb[ax] * so[ax];
            pos[ax] = 0;
        }
    }
}

fn zeros(s: &[usize]) -> Vec<f32> {
    vec![0f32; s.iter().product()]
}

pub fn add(sa: &[usize], sb: &[usize], so: &[usize], go: &[f32]) -> Vec<Vec<f32>> {
    let (mut da, mut db) = (zeros(sa), zeros(sb));
    walk(sa, sb, so, |o, ia, ib| {
        da[ia] += go[o];
        db[ib] += go[o];
    });
    vec![da, db]
}

pub fn sub(sa: &[usize], sb: &[usize], so: &[usize], go: &[f32]) -> Vec<Vec<f32>> {
    let (mut da, mut db) = (zeros(sa), zeros(sb));
    walk(sa, sb, so, |o, ia, ib| {
        da[ia] += go[o];
        db[ib] -= go[o];
    });
    vec![da, db]
}

pub fn mul(a: &[f32], sa: &[usize], b: &[f32], sb: &[usize], so: &[usize], go: &[f32]) -> Vec<Vec<f32>> {
    let (mut da, mut db) = (zeros(sa), zeros(sb));
    walk(sa, sb, so, |o, ia, ib| {
        da[ia] += go[o] * b[ib];
        db[ib] += go[o] * a[ia];
    });
    vec![da, db]
}

/// PRelu `x ≥ 0 ? x : slope·x`: the slope's gradient is reduced over the axes it broadcasts on.
pub fn prelu(x: &[f32], sx: &[usize], slope: &[f32], ss: &[usize], so: &[usize], go: &[f32]) -> Vec<Vec<f32>> {
    let (mut dx, mut ds) = (zeros(sx), zeros(ss));
    walk(sx, ss, so, |o, ix, is| {
        if x[ix] >= 0.0 {
            dx[ix] += go[o];
        } else {
            dx[ix] += go[o] * slope[is];
            ds[is] += go[o] * x[ix];
        }
    });
    vec![dx, ds]
}

/// Max/Min: the gradient goes to the input `wins` picks (`a` when `wins(a, b)`, `b` when
/// `wins(b, a)`), split in half on a tie as PyTorch's `maximum`/`minimum` do; reduced over the
/// axes each input broadcasts on.
pub fn extremum(
    a: &[f32],
    sa: &[usize],
    b: &[f32],
    sb: &[usize],
    so: &[usize],
    go: &[f32],
    wins: fn(f32, f32) -> bool,
) -> Vec<Vec<f32>> {
    let (mut da, mut db) = (zeros(sa), zeros(sb));
    walk(sa, sb, so, |o, ia, ib| {
        let (x, y) = (a[ia], b[ib]);
        let (ga, gb) = if wins(x, y) {
            (go[o], 0.0)
        } else if wins(y, x) {
            (0.0, go[o])
        } else {
            (go[o] / 2.0, go[o] / 2.0)
        };
        da[ia] += ga;
        db[ib] += gb;
    });
    vec![da, db]
}
