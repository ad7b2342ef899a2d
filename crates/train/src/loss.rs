//! Losses on one sample's output, each returning the loss and its gradient w.r.t. the output.

/// What a sample's output is compared with.
#[derive(Clone, Copy, Debug)]
pub enum Target<'a> {
    /// A class index (the output holds one logit per class).
    Class(usize),
    /// Values of the output's size: regression targets, or a teacher's logits.
    Values(&'a [f32]),
}

/// The loss of one sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Loss {
    /// Softmax cross-entropy of logits against a class.
    CrossEntropy,
    /// Mean squared error against target values.
    Mse,
    /// KL divergence from the teacher's softmax to the student's, both at `temperature`,
    /// scaled by temperature² so gradients keep their size as the temperature changes.
    Kl { temperature: f32 },
}

impl Loss {
    pub fn name(self) -> &'static str {
        match self {
            Loss::CrossEntropy => "cross-entropy",
            Loss::Mse => "mse",
            Loss::Kl { .. } => "kl",
        }
    }
}

/// log-softmax of `x / t`, in f64.
fn log_softmax(x: &[f32], t: f32) -> Vec<f64> {
    let t = t as f64;
    let max = x.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64 / t));
    let lse = max + x.iter().map(|&v| (v as f64 / t - max).exp()).sum::<f64>().ln();
    x.iter().map(|&v| v as f64 / t - lse).collect()
}

/// The loss of `out` against `target` and d loss / d out. `None` when the target does not fit
/// the loss (wrong class index, wrong number of values).
pub fn loss_and_grad(loss: Loss, out: &[f32], target: Target<'_>) -> Option<(f64, Vec<f32>)> {
    match (loss, target) {
        (Loss::CrossEntropy, Target::Class(c)) if c < out.len() => {
            let ls = log_softmax(out, 1.0);
            let grad = ls.iter().enumerate().map(|(k, &l)| (l.exp() - f64::from(u8::from(k == c))) as f32).collect();
            Some((-ls[c], grad))
        }
        (Loss::Mse, Target::Values(y)) if y.len() == out.len() => {
            let n = out.len() as f64;
            let loss = out.iter().zip(y).map(|(&o, &t)| (o as f64 - t as f64).powi(2)).sum::<f64>() / n;
            let grad = out.iter().zip(y).map(|(&o, &t)| (2.0 * (o as f64 - t as f64) / n) as f32).collect();
            Some((loss, grad))
        }
        (Loss::Kl { temperature }, Target::Values(teacher)) if teacher.len() == out.len() => {
            let t = temperature as f64;
            let (ls, lt) = (log_softmax(out, temperature), log_softmax(teacher, temperature));
            let loss = t * t * lt.iter().zip(&ls).map(|(&a, &b)| a.exp() * (a - b)).sum::<f64>();
            let grad = ls.iter().zip(&lt).map(|(&s, &p)| (t * (s.exp() - p.exp())) as f32).collect();
            Some((loss, grad))
        }
        _ => None,
    }
}

/// Index of the largest value (the first one on ties).
pub fn argmax(x: &[f32]) -> usize {
    x.iter().enumerate().fold(0, |best, (k, &v)| if v > x[best] { k } else { best })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Central differences of the loss in f64 agree with the analytic gradient.
    fn check(loss: Loss, out: &[f32], target: Target<'_>) {
        let (_, grad) = loss_and_grad(loss, out, target).unwrap();
        for k in 0..out.len() {
            let eps = 1e-3f32;
            let mut p = out.to_vec();
            p[k] += eps;
            let lp = loss_and_grad(loss, &p, target).unwrap().0;
            p[k] -= 2.0 * eps;
            let lm = loss_and_grad(loss, &p, target).unwrap().0;
            let fd = (lp - lm) / (2.0 * eps as f64);
            assert!(
                (fd - grad[k] as f64).abs() < 1e-3 * (1.0 + fd.abs()),
                "{loss:?} coordinate {k}: analytic {} vs {fd}",
                grad[k]
            );
        }
    }

    #[test]
    fn gradients_match_finite_differences() {
        let out = [0.3f32, -1.2, 2.5, 0.0, 0.7];
        let other = [1.0f32, 0.5, -0.5, 2.0, -1.0];
        check(Loss::CrossEntropy, &out, Target::Class(3));
        check(Loss::Mse, &out, Target::Values(&other));
        check(Loss::Kl { temperature: 1.0 }, &out, Target::Values(&other));
        check(Loss::Kl { temperature: 4.0 }, &out, Target::Values(&other));
    }

    #[test]
    fn known_values() {
        // Uniform logits over 4 classes: cross-entropy ln 4.
        let (l, _) = loss_and_grad(Loss::CrossEntropy, &[1.0; 4], Target::Class(0)).unwrap();
        assert!((l - 4f64.ln()).abs() < 1e-12);
        // A student equal to its teacher has zero KL and zero gradient.
        let x = [0.1f32, 2.0, -3.0];
        let (l, g) = loss_and_grad(Loss::Kl { temperature: 2.0 }, &x, Target::Values(&x)).unwrap();
        assert!(l.abs() < 1e-12 && g.iter().all(|v| v.abs() < 1e-7));
        assert!(loss_and_grad(Loss::CrossEntropy, &x, Target::Class(3)).is_none());
        assert!(loss_and_grad(Loss::Mse, &x, Target::Values(&[1.0])).is_none());
        assert_eq!(argmax(&[1.0, 3.0, 3.0, -1.0]), 1);
    }
}
