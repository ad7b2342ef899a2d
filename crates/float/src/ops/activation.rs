//! Element-wise activations and softmax over the last axis.

pub fn map(x: &[f32], out: &mut [f32], f: impl Fn(f32) -> f32) {
    out.iter_mut().zip(x).for_each(|(o, &v)| *o = f(v));
}

/// `x − max − log Σ exp(x − max)` over rows of `inner` values (TFLite's reference `LogSoftmax`).
pub fn log_softmax(x: &[f32], inner: usize, out: &mut [f32]) {
    for (xs, os) in x.chunks_exact(inner.max(1)).zip(out.chunks_exact_mut(inner.max(1))) {
        let max = xs.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum: f32 = xs.iter().map(|&v| (v - max).exp()).sum();
        let log_sum = sum.ln();
        os.iter_mut().zip(xs).for_each(|(o, &v)| *o = v - max - log_sum);
    }
}

pub fn softmax(x: &[f32], inner: usize, beta: f32, out: &mut [f32]) {
    for (xs, os) in x.chunks_exact(inner.max(1)).zip(out.chunks_exact_mut(inner.max(1))) {
        let max = xs.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0f32;
        for (o, &v) in os.iter_mut().zip(xs) {
            *o = ((v - max) * beta).exp();
            sum += *o;
        }
        os.iter_mut().for_each(|o| *o /= sum);
    }
}
