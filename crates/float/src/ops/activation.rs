//! Element-wise activations and softmax over the last axis.

pub fn map(x: &[f32], out: &mut [f32], f: impl Fn(f32) -> f32) {
    out.iter_mut().zip(x).for_each(|(o, &v)| *o = f(v));
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
