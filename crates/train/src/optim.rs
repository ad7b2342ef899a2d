//! Optimizers (SGD with momentum, Adam) and learning-rate schedules.

/// Which update rule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OptimizerKind {
    Sgd { momentum: f32 },
    Adam { beta1: f32, beta2: f32, eps: f32 },
}

impl OptimizerKind {
    pub fn adam() -> OptimizerKind {
        OptimizerKind::Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8 }
    }
}

/// Optimizer state for a fixed list of parameter slots (each a vector of its own length).
#[derive(Clone, Debug)]
pub struct Optimizer {
    kind: OptimizerKind,
    /// First moment (or momentum buffer) per slot.
    m: Vec<Vec<f32>>,
    /// Second moment per slot (Adam only).
    v: Vec<Vec<f32>>,
    steps: u32,
}

impl Optimizer {
    pub fn new(kind: OptimizerKind, slot_sizes: &[usize]) -> Optimizer {
        let zeros = || slot_sizes.iter().map(|&n| vec![0f32; n]).collect::<Vec<_>>();
        let v = if matches!(kind, OptimizerKind::Adam { .. }) { zeros() } else { Vec::new() };
        Optimizer { kind, m: zeros(), v, steps: 0 }
    }

    /// Starts a new step (Adam's bias correction counts steps).
    pub fn begin_step(&mut self) {
        self.steps += 1;
    }

    /// Updates slot `k` in place from its gradient.
    pub fn update(&mut self, k: usize, param: &mut [f32], grad: &[f32], lr: f32) {
        match self.kind {
            OptimizerKind::Sgd { momentum } => {
                for ((p, &g), m) in param.iter_mut().zip(grad).zip(&mut self.m[k]) {
                    *m = momentum * *m + g;
                    *p -= lr * *m;
                }
            }
            OptimizerKind::Adam { beta1, beta2, eps } => {
                let t = self.steps.max(1) as i32;
                let (c1, c2) = (1.0 - beta1.powi(t), 1.0 - beta2.powi(t));
                for (((p, &g), m), v) in param.iter_mut().zip(grad).zip(&mut self.m[k]).zip(&mut self.v[k]) {
                    *m = beta1 * *m + (1.0 - beta1) * g;
                    *v = beta2 * *v + (1.0 - beta2) * g * g;
                    *p -= lr * (*m / c1) / ((*v / c2).sqrt() + eps);
                }
            }
        }
    }
}

/// Learning rate as a function of progress through training.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Schedule {
    Constant,
    /// Half a cosine from the base rate down to 0 over all steps.
    Cosine,
    /// Multiply by `gamma` every `every` epochs.
    Step {
        every: usize,
        gamma: f32,
    },
}

impl Schedule {
    /// The rate at `step` of `total` steps (`epoch` is the epoch `step` falls in).
    pub fn rate(self, base: f32, step: usize, total: usize, epoch: usize) -> f32 {
        match self {
            Schedule::Constant => base,
            Schedule::Cosine => {
                let progress = step as f64 / total.max(1) as f64;
                (base as f64 * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())) as f32
            }
            Schedule::Step { every, gamma } => base * gamma.powi((epoch / every.max(1)) as i32),
        }
    }

    /// Parses `constant`, `cosine` or `step:EVERY:GAMMA` (e.g. `step:2:0.1`).
    pub fn parse(s: &str) -> Option<Schedule> {
        match s.split(':').collect::<Vec<_>>()[..] {
            ["constant"] => Some(Schedule::Constant),
            ["cosine"] => Some(Schedule::Cosine),
            ["step", every, gamma] => {
                let (every, gamma) = (every.parse().ok()?, gamma.parse::<f32>().ok()?);
                (every > 0 && gamma > 0.0 && gamma.is_finite()).then_some(Schedule::Step { every, gamma })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both optimizers drive f(p) = Σ c_i (p_i − t_i)² to its minimum.
    #[test]
    fn minimize_quadratic() {
        let target = [1.5f32, -2.0, 0.25];
        let curvature = [1.0f32, 4.0, 0.5];
        for (kind, lr) in [(OptimizerKind::Sgd { momentum: 0.9 }, 0.05), (OptimizerKind::adam(), 0.05)] {
            let mut opt = Optimizer::new(kind, &[3]);
            let mut p = vec![0f32; 3];
            for _ in 0..2000 {
                let g: Vec<f32> = (0..3).map(|i| 2.0 * curvature[i] * (p[i] - target[i])).collect();
                opt.begin_step();
                opt.update(0, &mut p, &g, lr);
            }
            for i in 0..3 {
                assert!((p[i] - target[i]).abs() < 1e-3, "{kind:?}: p = {p:?}");
            }
        }
    }

    #[test]
    fn first_adam_step_moves_by_the_rate() {
        let mut opt = Optimizer::new(OptimizerKind::adam(), &[2]);
        let mut p = vec![0f32, 0.0];
        opt.begin_step();
        opt.update(0, &mut p, &[3.0, -0.001], 0.1);
        assert!((p[0] + 0.1).abs() < 1e-5 && (p[1] - 0.1).abs() < 1e-3, "{p:?}");
    }

    #[test]
    fn schedules() {
        assert_eq!(Schedule::Cosine.rate(1.0, 0, 100, 0), 1.0);
        assert!((Schedule::Cosine.rate(1.0, 50, 100, 0) - 0.5).abs() < 1e-6);
        assert!(Schedule::Cosine.rate(1.0, 100, 100, 0).abs() < 1e-6);
        let s = Schedule::parse("step:2:0.1").unwrap();
        assert_eq!(s.rate(1.0, 0, 10, 1), 1.0);
        assert!((s.rate(1.0, 0, 10, 2) - 0.1).abs() < 1e-7);
        assert!((s.rate(1.0, 0, 10, 5) - 0.01).abs() < 1e-7);
        assert_eq!(Schedule::parse("constant"), Some(Schedule::Constant));
        for bad in ["step:0:0.1", "step:2", "step:2:-1", "linear", ""] {
            assert_eq!(Schedule::parse(bad), None, "{bad}");
        }
    }
}
