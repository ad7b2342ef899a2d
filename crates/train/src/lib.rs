//! Training over the IR: a reverse-mode tape on the float engine's kernels, losses, optimizers,
//! and fake quantization that is the exporter's quantization.
//!
//! Every step quantizes the current float graph with the PTQ pass itself
//! ([`tinyq_quant::quantize_graph`], same per-op rules, same parameter arithmetic) and runs the
//! forward pass on what that int8 graph means in real numbers: dequantized int8 weights and int32
//! biases, and every activation that the int8 graph stores as int8 rounded and clamped to its
//! grid. What is trained is therefore exactly what is exported. Gradients go through the
//! rounding straight through (zero where a value was clamped); the ranges of activations are
//! either learned (a learned step size with PACT-style clipping gradients) or tracked by a moving
//! average of the batch min/max.
//!
//! A step is parallel over samples in fixed chunks whose gradients are summed in order, so the
//! result does not depend on the thread count.

mod fake_quant;
pub mod loss;
pub mod optim;
mod rng;

pub use loss::{argmax, loss_and_grad, Loss, Target};
pub use optim::{Optimizer, OptimizerKind, Schedule};
pub use rng::shuffled;

use fake_quant::{straight_through, wide, Grid, Requant};
use rayon::prelude::*;
use tinyq_float::{backward::backward, Plan};
use tinyq_ir::{DType, Graph, Op, Tensor, TensorData, TensorId};
use tinyq_quant::{output_rule, quantize_graph, OutputRule, PtqConfig, QuantError};

/// Samples per parallel work item; the sum over a batch is taken chunk by chunk in order.
const CHUNK: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{0}")]
    Graph(String),
    #[error(transparent)]
    Quant(#[from] QuantError),
    #[error("{0}")]
    Sample(String),
}

/// How activation ranges evolve during training.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeMode {
    /// Learned by gradient descent with the weights.
    Learned,
    /// Exponential moving average of each batch's min and max.
    Ema,
}

#[derive(Clone, Debug)]
pub struct QatConfig {
    /// The quantization rules (per-tensor weights etc.); float I/O does not affect training.
    pub ptq: PtqConfig,
    /// Simulate quantization in the forward pass (false trains the plain float model).
    pub fake_quant: bool,
    pub ranges: RangeMode,
    /// Weight of the old value in [`RangeMode::Ema`].
    pub ema_momentum: f32,
    pub optimizer: OptimizerKind,
    pub loss: Loss,
}

/// One training sample: the model's inputs and what its output is compared with.
pub struct Example<'a> {
    pub inputs: Vec<&'a [f32]>,
    pub target: Target<'a>,
}

/// Sums over the samples of a step.
#[derive(Clone, Copy, Debug, Default)]
pub struct StepStats {
    pub samples: usize,
    pub loss: f64,
    /// Samples whose top class is the target class (or the teacher's top class).
    pub correct: usize,
    /// Sum of squared errors against target values.
    pub sq_error: f64,
}

impl StepStats {
    pub fn add(&mut self, o: &StepStats) {
        self.samples += o.samples;
        self.loss += o.loss;
        self.correct += o.correct;
        self.sq_error += o.sq_error;
    }
}

/// Weights, biases and ranges at one point of training.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    values: Vec<Vec<f32>>,
    ranges: Vec<Option<(f32, f32)>>,
}

/// What one step's forward passes use: constants as the int8 graph means them, the grid of
/// every int8 activation, and the integer rounding of layers with an accumulator.
struct Snapshot {
    consts: Vec<Option<Vec<f32>>>,
    grids: Vec<Option<Grid>>,
    requants: Vec<Option<Requant>>,
}

/// One sample's forward values: before fake quantization (`pre`) and after (`post`, only where
/// the tensor is quantized).
struct Tape {
    pre: Vec<Option<Vec<f32>>>,
    post: Vec<Option<Vec<f32>>>,
}

impl Tape {
    fn set(&mut self, t: TensorId, v: Vec<f32>, snap: &Snapshot) {
        match (snap.grids[t], &snap.requants[t]) {
            (Some(grid), Some(r)) => self.post[t] = Some(r.apply(&v, grid)),
            (Some(grid), None) => {
                let mut post = vec![0f32; v.len()];
                wide(
                    #[inline(always)]
                    || {
                        for (p, &x) in post.iter_mut().zip(&v) {
                            *p = grid.apply(x);
                        }
                    },
                );
                self.post[t] = Some(post);
            }
            _ => {}
        }
        self.pre[t] = Some(v);
    }

    /// The value consumers of `t` see.
    fn value<'a>(&'a self, t: TensorId, snap: &'a Snapshot) -> &'a [f32] {
        self.post[t].as_deref().or(self.pre[t].as_deref()).or(snap.consts[t].as_deref()).expect("topological order")
    }
}

/// Gradient sums of a chunk of samples.
#[derive(Clone)]
struct Acc {
    params: Vec<Vec<f32>>,
    ranges: Vec<[f64; 2]>,
    /// Batch min/max of each learned-range tensor (for the moving average).
    seen: Vec<(f32, f32)>,
    stats: StepStats,
}

impl Acc {
    fn merge(&mut self, o: &Acc) {
        for (a, b) in self.params.iter_mut().zip(&o.params) {
            a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
        }
        for (a, b) in self.ranges.iter_mut().zip(&o.ranges) {
            a[0] += b[0];
            a[1] += b[1];
        }
        for (a, b) in self.seen.iter_mut().zip(&o.seen) {
            *a = (a.0.min(b.0), a.1.max(b.1));
        }
        self.stats.add(&o.stats);
    }
}

/// Real values of a (possibly quantized) constant.
fn dequantize(t: &Tensor) -> Vec<f32> {
    let raw = t.f32_data().unwrap_or_default();
    let Some(q) = &t.qparams else { return raw };
    let (inner, channels) = match q.axis {
        Some(a) => (t.shape[a + 1..].iter().product::<usize>(), t.shape[a]),
        None => (raw.len().max(1), 1),
    };
    raw.iter()
        .enumerate()
        .map(|(i, &v)| {
            let c = (i / inner) % channels;
            ((v as f64 - q.zero_point[c] as f64) * q.scale[c] as f64) as f32
        })
        .collect()
}

/// A float graph being trained.
pub struct Trainer {
    plan: Plan,
    cfg: QatConfig,
    /// Trainable constants (weights and biases of conv, depthwise and dense layers).
    params: Vec<TensorId>,
    values: Vec<Vec<f32>>,
    param_of: Vec<Option<usize>>,
    /// Activation ranges by tensor id, as `quantize_graph` takes them.
    ranges: Vec<Option<(f32, f32)>>,
    /// Tensors whose range evolves (outputs of ops that own their range).
    learned: Vec<TensorId>,
    learned_of: Vec<Option<usize>>,
    /// Each learned range's initial width: ranges are optimized in these units, so an optimizer
    /// step moves a range by a fraction of its size whatever the tensor's magnitude.
    range_units: Vec<f32>,
    /// Where the loss is taken: the model's output, or the logits before a final softmax.
    loss_at: TensorId,
    optimizer: Optimizer,
}

impl Trainer {
    /// Prepares `graph` (a float graph with one output) for training from the calibrated
    /// `ranges` of its activations (by tensor id, as for PTQ).
    pub fn new(graph: &Graph, ranges: Vec<Option<(f32, f32)>>, cfg: QatConfig) -> Result<Trainer, TrainError> {
        let plan = Plan::new(graph).map_err(|e| TrainError::Graph(e.to_string()))?;
        let g = plan.graph();
        if g.outputs.len() != 1 {
            return Err(TrainError::Graph(format!(
                "training needs a model with one output; this one has {}",
                g.outputs.len()
            )));
        }
        let out = g.outputs[0];
        let loss_at = match g.producer(out).map(|n| &g.nodes[n]) {
            Some(n)
                if matches!(&n.op, Op::Softmax(p) if p.beta == 1.0)
                    && matches!(cfg.loss, Loss::CrossEntropy | Loss::Kl { .. }) =>
            {
                n.inputs[0]
            }
            _ => out,
        };
        let mut param_of = vec![None; g.tensors.len()];
        let mut params = Vec::new();
        for n in &g.nodes {
            if n.op.has_weights() {
                for &t in &n.inputs[1..] {
                    if g.tensor(t).is_constant() && param_of[t].is_none() {
                        param_of[t] = Some(params.len());
                        params.push(t);
                    }
                }
            }
        }
        let values: Vec<Vec<f32>> = params.iter().map(|&t| g.tensor(t).f32_data().unwrap_or_default()).collect();
        let mut ranges = ranges;
        ranges.resize(g.tensors.len(), None);
        let learned: Vec<TensorId> = if cfg.fake_quant {
            g.nodes
                .iter()
                .filter(|n| matches!(output_rule(&n.op), Ok(OutputRule::Own)))
                .map(|n| n.outputs[0])
                .filter(|&t| ranges[t].is_some())
                .collect()
        } else {
            Vec::new()
        };
        let mut learned_of = vec![None; g.tensors.len()];
        learned.iter().enumerate().for_each(|(k, &t)| learned_of[t] = Some(k));
        let range_units = learned.iter().map(|&t| ranges[t].map_or(1.0, |(lo, hi)| (hi - lo).max(1e-6))).collect();
        let slots: Vec<usize> = values.iter().map(Vec::len).chain(learned.iter().map(|_| 2)).collect();
        let optimizer = Optimizer::new(cfg.optimizer, &slots);
        Ok(Trainer {
            plan,
            cfg,
            params,
            values,
            param_of,
            ranges,
            learned,
            learned_of,
            range_units,
            loss_at,
            optimizer,
        })
    }

    /// The tensor the loss is computed on (a teacher's targets for distillation are this
    /// tensor's values in the float model).
    pub fn loss_tensor(&self) -> TensorId {
        self.loss_at
    }

    pub fn ranges(&self) -> &[Option<(f32, f32)>] {
        &self.ranges
    }

    /// The graph with the current weights (float).
    pub fn float_graph(&self) -> Graph {
        let mut g = self.plan.graph().clone();
        for (&t, v) in self.params.iter().zip(&self.values) {
            g.tensors[t].data = Some(TensorData::F32(v.clone()));
            g.tensors[t].dtype = DType::F32;
        }
        g
    }

    /// The int8 graph the current state exports to (the PTQ pass over the current weights and
    /// ranges).
    pub fn quantized(&self, ptq: &PtqConfig) -> Result<Graph, TrainError> {
        Ok(quantize_graph(&self.float_graph(), &self.ranges, ptq)?)
    }

    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint { values: self.values.clone(), ranges: self.ranges.clone() }
    }

    pub fn restore(&mut self, c: &Checkpoint) {
        self.values = c.values.clone();
        self.ranges = c.ranges.clone();
    }

    fn snapshot(&self) -> Result<Snapshot, TrainError> {
        let g = self.plan.graph();
        if !self.cfg.fake_quant {
            let fg = self.float_graph();
            let none = vec![None; g.tensors.len()];
            return Ok(Snapshot {
                consts: fg.tensors.iter().map(Tensor::f32_data).collect(),
                grids: none.clone(),
                requants: vec![None; none.len()],
            });
        }
        let q = self.quantized(&PtqConfig { float_io: false, ..self.cfg.ptq.clone() })?;
        let consts = q.tensors.iter().map(|t| t.is_constant().then(|| dequantize(t))).collect();
        let grids = q
            .tensors
            .iter()
            .map(|t| match &t.qparams {
                Some(p) if !t.is_constant() && t.dtype == DType::I8 => {
                    Some(Grid { scale: p.scale[0], zero_point: p.zero_point[0] })
                }
                _ => None,
            })
            .collect();
        let mut requants = vec![None; g.tensors.len()];
        for n in &q.nodes {
            if n.op.has_weights() {
                let scale = |t: TensorId| q.tensor(t).qparams.as_ref().map(|p| p.scale.clone());
                if let (Some(si), Some(sw), Some(so)) = (scale(n.inputs[0]), scale(n.inputs[1]), scale(n.outputs[0])) {
                    requants[n.outputs[0]] = Requant::new(si[0], &sw, so[0]);
                }
            }
        }
        Ok(Snapshot { consts, grids, requants })
    }

    fn forward(&self, snap: &Snapshot, inputs: &[&[f32]]) -> Result<Tape, TrainError> {
        let g = self.plan.graph();
        if inputs.len() != g.inputs.len() {
            return Err(TrainError::Sample(format!("expected {} inputs, got {}", g.inputs.len(), inputs.len())));
        }
        let mut tape = Tape { pre: vec![None; g.tensors.len()], post: vec![None; g.tensors.len()] };
        for (&id, x) in g.inputs.iter().zip(inputs) {
            let t = g.tensor(id);
            if x.len() != t.numel() {
                return Err(TrainError::Sample(format!(
                    "input `{}` needs {} values, got {}",
                    t.name,
                    t.numel(),
                    x.len()
                )));
            }
            tape.set(id, x.to_vec(), snap);
        }
        for node in &g.nodes {
            let out = {
                let args: Vec<&[f32]> = node.inputs.iter().map(|&i| tape.value(i, snap)).collect();
                self.plan.eval_node(node, &args)
            };
            tape.set(node.outputs[0], out, snap);
        }
        Ok(tape)
    }

    /// The output the loss sees (fake-quantized forward), for one sample.
    pub fn predict(&self, inputs: &[&[f32]]) -> Result<Vec<f32>, TrainError> {
        Ok(self.predict_all(&[inputs.to_vec()])?.remove(0))
    }

    /// Every tensor of one sample's fake-quantized forward pass, by tensor id, as consumers see
    /// it (on the int8 grid where the exported model stores int8).
    pub fn simulate(&self, inputs: &[&[f32]]) -> Result<Vec<Option<Vec<f32>>>, TrainError> {
        let snap = self.snapshot()?;
        let tape = self.forward(&snap, inputs)?;
        Ok((0..tape.pre.len()).map(|t| tape.post[t].clone().or_else(|| tape.pre[t].clone())).collect())
    }

    /// [`Self::predict`] for many samples, in parallel.
    pub fn predict_all(&self, samples: &[Vec<&[f32]>]) -> Result<Vec<Vec<f32>>, TrainError> {
        let snap = self.snapshot()?;
        samples.par_iter().map(|s| Ok(self.forward(&snap, s)?.value(self.loss_at, &snap).to_vec())).collect()
    }

    fn zero_acc(&self) -> Acc {
        Acc {
            params: self.values.iter().map(|v| vec![0f32; v.len()]).collect(),
            ranges: vec![[0.0; 2]; self.learned.len()],
            seen: vec![(f32::INFINITY, f32::NEG_INFINITY); self.learned.len()],
            stats: StepStats::default(),
        }
    }

    /// Forward and backward of one sample, adding its gradients to `acc`.
    fn sample(&self, snap: &Snapshot, ex: &Example<'_>, acc: &mut Acc) -> Result<(), TrainError> {
        let g = self.plan.graph();
        let tape = self.forward(snap, &ex.inputs)?;
        let out = tape.value(self.loss_at, snap);
        let (loss, seed) = loss_and_grad(self.cfg.loss, out, ex.target).ok_or_else(|| {
            TrainError::Sample(format!(
                "the target does not fit {} loss on an output of {} values",
                self.cfg.loss.name(),
                out.len()
            ))
        })?;
        let s = &mut acc.stats;
        s.samples += 1;
        s.loss += loss;
        match ex.target {
            Target::Class(c) => s.correct += usize::from(argmax(out) == c),
            Target::Values(v) if matches!(self.cfg.loss, Loss::Kl { .. }) => {
                s.correct += usize::from(argmax(out) == argmax(v))
            }
            Target::Values(v) => {
                s.sq_error += out.iter().zip(v).map(|(&a, &b)| (a as f64 - b as f64).powi(2)).sum::<f64>()
            }
        }
        for (k, &t) in self.learned.iter().enumerate() {
            let pre = tape.pre[t].as_deref().unwrap_or_default();
            acc.seen[k] = pre.iter().fold(acc.seen[k], |(lo, hi), &x| (lo.min(x), hi.max(x)));
        }

        let mut grads: Vec<Option<Vec<f32>>> = vec![None; g.tensors.len()];
        grads[self.loss_at] = Some(seed);
        for node in g.nodes.iter().rev() {
            let out = node.outputs[0];
            let Some(mut go) = grads[out].take() else { continue };
            let pre = tape.pre[out].as_deref().expect("computed in forward");
            if let Some(grid) = snap.grids[out] {
                let [dlo, dhi] = straight_through(&mut go, pre, grid);
                if let Some(k) = self.learned_of[out] {
                    // Learned step size: gradients scaled by 1/sqrt(values × 127).
                    let scale = 1.0 / ((pre.len() as f64) * 127.0).sqrt();
                    acc.ranges[k][0] += dlo * scale;
                    acc.ranges[k][1] += dhi * scale;
                }
            }
            let args: Vec<&[f32]> = node.inputs.iter().map(|&i| tape.value(i, snap)).collect();
            let shapes: Vec<&[usize]> = node.inputs.iter().map(|&i| &g.tensor(i).shape[..]).collect();
            let grad_in = backward(&node.op, &args, &shapes, pre, &g.tensor(out).shape, &go);
            for (&i, gi) in node.inputs.iter().zip(grad_in) {
                if let Some(p) = self.param_of[i] {
                    acc.params[p].iter_mut().zip(&gi).for_each(|(a, b)| *a += b);
                } else if !g.tensor(i).is_constant() {
                    match &mut grads[i] {
                        Some(v) => v.iter_mut().zip(&gi).for_each(|(a, b)| *a += b),
                        None => grads[i] = Some(gi),
                    }
                }
            }
        }
        Ok(())
    }

    /// Forward and backward over `batch`, in parallel chunks summed in order.
    fn accumulate(&self, batch: &[Example<'_>]) -> Result<Acc, TrainError> {
        let snap = self.snapshot()?;
        let chunks: Vec<Acc> = batch
            .par_chunks(CHUNK)
            .map(|chunk| {
                let mut acc = self.zero_acc();
                chunk.iter().try_for_each(|ex| self.sample(&snap, ex, &mut acc))?;
                Ok(acc)
            })
            .collect::<Result<_, TrainError>>()?;
        let mut total = self.zero_acc();
        chunks.iter().for_each(|c| total.merge(c));
        Ok(total)
    }

    /// The trainable tensors (weights and biases) and their current values.
    pub fn parameters(&self) -> impl Iterator<Item = (TensorId, &[f32])> {
        self.params.iter().copied().zip(self.values.iter().map(Vec::as_slice))
    }

    /// Mean gradient of the loss over `batch` w.r.t. each parameter (in [`Self::parameters`]
    /// order).
    pub fn gradients(&self, batch: &[Example<'_>]) -> Result<Vec<Vec<f32>>, TrainError> {
        let total = self.accumulate(batch)?;
        let mean = 1.0 / batch.len().max(1) as f32;
        Ok(total.params.into_iter().map(|g| g.into_iter().map(|x| x * mean).collect()).collect())
    }

    /// One optimizer step on the mean gradient of `batch` at learning rate `lr`.
    pub fn step(&mut self, batch: &[Example<'_>], lr: f32) -> Result<StepStats, TrainError> {
        if batch.is_empty() {
            return Ok(StepStats::default());
        }
        let total = self.accumulate(batch)?;
        let mean = 1.0 / batch.len() as f32;
        self.optimizer.begin_step();
        for (k, v) in self.values.iter_mut().enumerate() {
            let g: Vec<f32> = total.params[k].iter().map(|x| x * mean).collect();
            self.optimizer.update(k, v, &g, lr);
        }
        for (k, &t) in self.learned.iter().enumerate() {
            let Some((lo, hi)) = self.ranges[t] else { continue };
            let mut r = [lo, hi];
            match self.cfg.ranges {
                RangeMode::Learned => {
                    let unit = self.range_units[k];
                    let g = total.ranges[k].map(|d| (d * mean as f64) as f32 * unit);
                    let mut scaled = r.map(|v| v / unit);
                    self.optimizer.update(self.values.len() + k, &mut scaled, &g, lr);
                    r = scaled.map(|v| v * unit);
                }
                RangeMode::Ema => {
                    let m = self.cfg.ema_momentum;
                    let (blo, bhi) = total.seen[k];
                    r = [m * lo + (1.0 - m) * blo, m * hi + (1.0 - m) * bhi];
                }
            }
            // A range must contain 0 and have some width.
            let (lo, hi) = (r[0].min(0.0), r[1].max(0.0));
            self.ranges[t] = Some((lo, hi.max(lo + 1e-6)));
        }
        Ok(total.stats)
    }
}
