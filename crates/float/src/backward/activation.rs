//! Gradients of element-wise activations and softmax (last axis).

/// Pass-through where the forward output is strictly inside `(lo, hi)`.
pub fn clamp(output: &[f32], go: &[f32], lo: f32, hi: f32) -> Vec<f32> {
    output.iter().zip(go).map(|(&o, &g)| if o > lo && o < hi { g } else { 0.0 }).collect()
}

/// Clip by its input: pass-through where `min < x < max`.
pub fn clip(x: &[f32], go: &[f32], min: f32, max: f32) -> Vec<f32> {
    x.iter().zip(go).map(|(&v, &g)| if v > min && v < max { g } else { 0.0 }).collect()
}

pub fn leaky_relu(x: &[f32], go: &[f32], alpha: f32) -> Vec<f32> {
    x.iter().zip(go).map(|(&v, &g)| if v >= 0.0 { g } else { alpha * g }).collect()
}

pub fn sigmoid(output: &[f32], go: &[f32]) -> Vec<f32> {
    output.iter().zip(go).map(|(&y, &g)| g * y * (1.0 - y)).collect()
}

pub fn tanh(output: &[f32], go: &[f32]) -> Vec<f32> {
    output.iter().zip(go).map(|(&y, &g)| g * (1.0 - y * y)).collect()
}

/// `x · clamp(x + 3, 0, 6) / 6`: 0 below -3, 1 above 3, `(2x + 3) / 6` between.
pub fn hard_swish(x: &[f32], go: &[f32]) -> Vec<f32> {
    x.iter()
        .zip(go)
        .map(|(&v, &g)| {
            let d = if v <= -3.0 {
                0.0
            } else if v >= 3.0 {
                1.0
            } else {
                (2.0 * v + 3.0) / 6.0
            };
            g * d
        })
        .collect()
}

/// `dx_i = beta · y_i · (g_i − Σ_j g_j y_j)` per row of `inner` values.
pub fn softmax(output: &[f32], inner: usize, beta: f32, go: &[f32]) -> Vec<f32> {
    let inner = inner.max(1);
    let mut dx = vec![0f32; output.len()];
    for ((ys, gs), ds) in output.chunks_exact(inner).zip(go.chunks_exact(inner)).zip(dx.chunks_exact_mut(inner)) {
        let dot: f64 = ys.iter().zip(gs).map(|(&y, &g)| y as f64 * g as f64).sum();
        for ((d, &y), &g) in ds.iter_mut().zip(ys).zip(gs) {
            *d = (beta as f64 * y as f64 * (g as f64 - dot)) as f32;
        }
    }
    dx
}

/// LogSoftmax from its output `y`: `g − exp(y) · Σ g` per row.
pub fn log_softmax(output: &[f32], inner: usize, go: &[f32]) -> Vec<f32> {
    let inner = inner.max(1);
    let mut dx = vec![0f32; output.len()];
    for ((ys, gs), ds) in output.chunks_exact(inner).zip(go.chunks_exact(inner)).zip(dx.chunks_exact_mut(inner)) {
        let total: f64 = gs.iter().map(|&g| g as f64).sum();
        for ((d, &y), &g) in ds.iter_mut().zip(ys).zip(gs) {
            *d = (g as f64 - (y as f64).exp() * total) as f32;
        }
    }
    dx
}

/// ELU (alpha 1): 1 for `x ≥ 0`, `exp(x)` below.
pub fn elu(x: &[f32], go: &[f32]) -> Vec<f32> {
    x.iter().zip(go).map(|(&v, &g)| if v < 0.0 { g * v.exp() } else { g }).collect()
}

/// ABS: the sign of `x` (0 at 0, as PyTorch's `abs` backward).
pub fn abs(x: &[f32], go: &[f32]) -> Vec<f32> {
    x.iter()
        .zip(go)
        .map(|(&v, &g)| {
            if v > 0.0 {
                g
            } else if v < 0.0 {
                -g
            } else {
                0.0
            }
        })
        .collect()
}
