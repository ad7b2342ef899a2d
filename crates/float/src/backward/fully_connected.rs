//! Gradient of the dense layer `out[r, o] = Σ_i x[r, i] · w[o, i] + bias[o]`. `go` is already
//! activation-masked. The output's shape (keep_num_dims or not) does not change the flat layout.

/// Returns `[dx, dw]` plus `db` when `has_bias`.
pub fn fully_connected(x: &[f32], w: &[f32], ws: &[usize], has_bias: bool, go: &[f32]) -> Vec<Vec<f32>> {
    let (units, inner) = (ws[0], ws[1]);
    let rows = x.len() / inner.max(1);
    if rows == 1 {
        return one_row(x, w, (units, inner), has_bias, go);
    }
    let mut dx = vec![0f32; x.len()];
    let mut dw = vec![0f64; w.len()];
    let mut db = vec![0f64; units];
    for r in 0..rows {
        let xr = &x[r * inner..(r + 1) * inner];
        let dxr = &mut dx[r * inner..(r + 1) * inner];
        for o in 0..units {
            let gv = go[r * units + o];
            if gv == 0.0 {
                continue;
            }
            db[o] += gv as f64;
            let wr = &w[o * inner..(o + 1) * inner];
            let dwr = &mut dw[o * inner..(o + 1) * inner];
            for i in 0..inner {
                dxr[i] += gv * wr[i];
                dwr[i] += (gv * xr[i]) as f64;
            }
        }
    }
    let mut grads = vec![dx, dw.into_iter().map(|v| v as f32).collect()];
    if has_bias {
        grads.push(db.into_iter().map(|v| v as f32).collect());
    }
    grads
}

/// [`fully_connected`] for one row, where the sums over rows have one term: the weight gradient
/// is the outer product `go ⊗ x` in f32 (the same values the f64 sum of one product gives), and
/// the input gradient is summed over units in the same order.
fn one_row(x: &[f32], w: &[f32], (units, inner): (usize, usize), has_bias: bool, go: &[f32]) -> Vec<Vec<f32>> {
    let mut dx = vec![0f32; inner];
    let mut dw = vec![0f32; w.len()];
    for (o, &gv) in go.iter().enumerate().take(units) {
        if gv == 0.0 {
            continue;
        }
        let (wr, dwr) = (&w[o * inner..(o + 1) * inner], &mut dw[o * inner..(o + 1) * inner]);
        dx.iter_mut().zip(wr).for_each(|(d, &v)| *d += gv * v);
        dwr.iter_mut().zip(x).for_each(|(d, &v)| *d = gv * v);
    }
    let mut grads = vec![dx, dw];
    if has_bias {
        grads.push(go[..units].iter().map(|&g| if g == 0.0 { 0.0 } else { g }).collect());
    }
    grads
}
