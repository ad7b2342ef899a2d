//! The corrections the default keeps, decided per model on the calibration set.
//!
//! The plain pipeline (`calibrate → choose ranges → quantize`) is scored first: the int8 file,
//! as TFLM runs it, on up to [`SAMPLES`] calibration samples, its outputs against the float
//! model's (class distributions for class scores, relative squared error otherwise, as `auto`
//! calibration compares them). Then each correction is tried in pipeline order on top of those
//! already kept (`equalize`, then `bias-correct`), and kept only when it lowers that error.
//!
//! A correction that learns from data (bias correction) is scored on samples it did not learn
//! from: the scoring samples are split in two halves, the correction fitted on one and scored on
//! the other, both ways; once kept, it is fitted again on the whole calibration set. A correction
//! is kept only when the mean of the per-sample error differences is more than [`MARGIN`]
//! standard errors below zero (a paired test), so a change within the noise of the scoring
//! samples keeps the simpler pipeline. No labels are used.

use serde::Serialize;

use crate::autocal::{output_error, output_kinds};
use crate::pipeline::{passes, Pass, PtqState, QuantizeSpec};
use crate::{BoundInputs, Model, TinyqError};
use tinyq_quant::Calibration;

/// Calibration samples the corrections are scored on (spread evenly over the set).
pub const SAMPLES: usize = 128;

/// What the choice of corrections did.
#[derive(Clone, Debug, Serialize)]
pub struct CorrectionChoice {
    /// The corrections kept, in pipeline order (empty: none helped).
    pub chosen: Vec<&'static str>,
    /// Each configuration tried (`none`, `equalize`, `equalize+bias-correct`, …) and its output
    /// error against the float model, summed over the scoring samples.
    pub scored: Vec<(String, f64)>,
    pub samples: usize,
}

/// The float model's outputs on the scoring samples, and how to score an int8 graph against them.
struct Scorer<'s> {
    model: &'s Model,
    samples: BoundInputs,
    /// Per output: every sample's real values back to back.
    reference: Vec<Vec<f32>>,
    kinds: Vec<Option<bool>>,
}

impl<'s> Scorer<'s> {
    /// `plain`: the plain pipeline, whose calibration may have kept the float model's outputs on
    /// every calibration sample (then they are not computed again).
    fn new(model: &'s Model, calib: &BoundInputs, plain: Option<&PtqState>) -> Result<Scorer<'s>, TinyqError> {
        let samples = calib.spread(SAMPLES);
        let kept = plain.and_then(|p| p.kept_outputs(&calib.spread_picks(SAMPLES)));
        let reference = match kept {
            Some(r) => r,
            None => {
                let out = crate::run_samples(model, &samples, &|_| {})?;
                (0..model.graph.outputs.len()).map(|k| out.real(model, k)).collect()
            }
        };
        Ok(Scorer { model, samples, reference, kinds: output_kinds(&model.graph) })
    }

    /// The two halves of the scoring samples (even and odd positions).
    fn folds(&self) -> [Vec<usize>; 2] {
        let n = self.samples.samples;
        [(0..n).step_by(2).collect(), (1..n).step_by(2).collect()]
    }

    /// The output error of `q` on each scoring sample of `picks`, written at its index in `errors`.
    fn error(&self, q: &tinyq_ir::Graph, picks: &[usize], errors: &mut [f64]) -> Result<(), TinyqError> {
        // The file as TFLM runs it (explicit paddings lowered).
        let file = tinyq_tflite::read_tflite(&tinyq_tflite::write_tflite(q)?)?;
        let m = Model { graph: file, ..self.model.clone() };
        let inputs = self.samples.subset(picks).rebind(&m.graph)?;
        let out = crate::run_samples(&m, &inputs, &|_| {})?;
        let g = &self.model.graph;
        picks.iter().for_each(|&i| errors[i] = 0.0);
        for (k, &o) in g.outputs.iter().enumerate() {
            let per = g.tensor(o).numel();
            let got = out.real(&m, k);
            for (j, &i) in picks.iter().enumerate() {
                let reference = &self.reference[k][i * per..(i + 1) * per];
                errors[i] += output_error(self.kinds[k], &got[j * per..(j + 1) * per], reference);
            }
        }
        Ok(())
    }

    /// The error of `prefix` (quantized, no fitted pass yet) followed by `fitted`: on all
    /// scoring samples when nothing is fitted, else each half scored with the passes fitted on
    /// the other.
    fn score(&self, prefix: &PtqState, fitted: &[Pass]) -> Result<Vec<f64>, TinyqError> {
        let mut errors = vec![0.0; self.samples.samples];
        let q = prefix.int8.as_ref().ok_or_else(|| TinyqError::Model("nothing quantized to score".into()))?;
        if fitted.is_empty() {
            let all: Vec<usize> = (0..self.samples.samples).collect();
            self.error(q, &all, &mut errors)?;
            return Ok(errors);
        }
        let [a, b] = self.folds();
        for (fit, scored) in [(&a, &b), (&b, &a)] {
            let learn = self.samples.subset(fit);
            let mut st = prefix.clone();
            st.calib = &learn;
            st.run(fitted, &|_| {})?;
            let q = st.int8.as_ref().ok_or_else(|| TinyqError::Model("nothing quantized to score".into()))?;
            self.error(q, scored, &mut errors)?;
        }
        Ok(errors)
    }
}

/// Whether per-sample errors `new` are lower than `old` beyond chance: the mean of the paired
/// differences is more than [`MARGIN`] standard errors above zero (a correction that only
/// moves the error within the noise of the scoring samples is not kept).
fn clearly_lower(new: &[f64], old: &[f64]) -> bool {
    let n = new.len() as f64;
    let d: Vec<f64> = old.iter().zip(new).map(|(o, x)| o - x).collect();
    let mean = d.iter().sum::<f64>() / n;
    let var = d.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1.0).max(1.0);
    mean > MARGIN * (var / n).sqrt()
}

/// Standard errors by which a correction must lower the mean output error to be kept: the
/// one-sided 5 % point of the normal distribution.
pub const MARGIN: f64 = 1.645;

/// The name of a configuration: its corrections joined by `+`, or `none`.
fn config_name(equalize: bool, fitted: &[Pass]) -> String {
    let names: Vec<&str> = equalize.then_some("equalize").into_iter().chain(fitted.iter().map(|p| p.name())).collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join("+")
    }
}

/// Quantizes `model` with `method` and `spec`, keeping each correction in `candidates` (in
/// pipeline order; `Pass::Equalize` and fitted passes) only where it lowers the output error on
/// the calibration set, as the module docs describe. `forced` corrections are always applied.
pub fn choose_corrections<'a>(
    model: &Model,
    calib: &'a BoundInputs,
    method: Calibration,
    spec: &QuantizeSpec,
    forced: &[Pass],
    candidates: &[Pass],
    progress: &(dyn Fn(usize) + Sync),
) -> Result<(PtqState<'a>, CorrectionChoice), TinyqError> {
    let mut equalize = forced.contains(&Pass::Equalize);
    let mut fitted: Vec<Pass> = forced.iter().filter(|p| p.is_fitted()).cloned().collect();
    let try_equalize =
        !equalize && candidates.contains(&Pass::Equalize) && crate::corrections::equalize(&model.graph).1 > 0;
    // The pipeline without the candidates and, when it is one, the equalized pipeline: neither
    // depends on the other, so both run at once.
    let pipeline = |eq: bool, progress: &(dyn Fn(usize) + Sync)| -> Result<PtqState<'a>, TinyqError> {
        let mut st = PtqState::new(model, calib);
        st.run(&passes(method, spec, eq, &[]), progress)?;
        Ok(st)
    };
    let (prefix, equalized) =
        rayon::join(|| pipeline(equalize, progress), || try_equalize.then(|| pipeline(true, &|_| {})).transpose());
    let (mut prefix, mut equalized) = (prefix?, equalized?);
    // The plain float model's outputs, if calibration kept its activations.
    let scorer = Scorer::new(model, calib, (!equalize).then_some(&prefix))?;
    prefix.drop_kept();
    if let Some(st) = equalized.as_mut() {
        st.drop_kept();
    }
    let mut best = scorer.score(&prefix, &fitted)?;
    let total = |e: &[f64]| e.iter().sum::<f64>();
    let mut scored = vec![(config_name(equalize, &fitted), total(&best))];
    for c in candidates {
        if *c == Pass::Equalize {
            let Some(st) = equalized.take() else { continue };
            let e = scorer.score(&st, &fitted)?;
            scored.push((config_name(true, &fitted), total(&e)));
            if clearly_lower(&e, &best) {
                (best, prefix, equalize) = (e, st, true);
            }
            continue;
        }
        if fitted.contains(c) {
            continue;
        }
        let trial: Vec<Pass> = passes(method, spec, false, &[fitted.as_slice(), std::slice::from_ref(c)].concat())
            .into_iter()
            .filter(Pass::is_fitted)
            .collect();
        let e = scorer.score(&prefix, &trial)?;
        scored.push((config_name(equalize, &trial), total(&e)));
        if clearly_lower(&e, &best) {
            (best, fitted) = (e, trial);
        }
    }
    let mut st = prefix;
    st.run(&fitted, &|_| {})?;
    let chosen = equalize.then_some("equalize").into_iter().chain(fitted.iter().map(|p| p.name())).collect();
    Ok((st, CorrectionChoice { chosen, scored, samples: scorer.samples.samples }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tinyq_data::{write_npz, ArrayData, Dataset, LoadOptions, NdArray};
    use tinyq_ir::op::{Conv2D, DepthwiseConv2D};
    use tinyq_ir::{DType, FusedActivation, Graph, Node, Op, Padding, Tensor, TensorData};

    /// x [1, 3, 3, 2] → conv 1×1 (ReLU) → h → depthwise 3×3 → y. The conv's channels span
    /// `a` and `b` times the input, the depthwise undoes it, so y's channels are alike while
    /// h's differ by `b / a`.
    fn model(a: f32, b: f32) -> Model {
        let mut g = Graph::default();
        let x = g.add_tensor(Tensor::activation("x", vec![1, 3, 3, 2], DType::F32));
        let w1 = g.add_tensor(Tensor::constant("w1", vec![2, 1, 1, 2], TensorData::F32(vec![a, 0.3 * a, -0.2 * b, b])));
        let h = g.add_tensor(Tensor::activation("h", vec![1, 3, 3, 2], DType::F32));
        let w2: Vec<f32> = (0..18).map(|i| ((i * 5 % 7) as f32 - 3.0) / if i % 2 == 0 { a } else { b }).collect();
        let w2 = g.add_tensor(Tensor::constant("w2", vec![1, 3, 3, 2], TensorData::F32(w2)));
        let y = g.add_tensor(Tensor::activation("y", vec![1, 1, 1, 2], DType::F32));
        let conv =
            Conv2D { stride: [1, 1], dilation: [1, 1], padding: Padding::Valid, activation: FusedActivation::Relu };
        let dw = DepthwiseConv2D { conv: Conv2D { activation: FusedActivation::None, ..conv }, depth_multiplier: 1 };
        g.nodes.push(Node { name: "conv".into(), op: Op::Conv2D(conv), inputs: vec![x, w1], outputs: vec![h] });
        g.nodes.push(Node { name: "dw".into(), op: Op::DepthwiseConv2D(dw), inputs: vec![h, w2], outputs: vec![y] });
        g.inputs = vec![x];
        g.outputs = vec![y];
        Model { graph: g, path: "m.onnx".into(), format: crate::ModelFormat::Onnx, file_bytes: 0 }
    }

    fn samples(g: &Graph, n: usize) -> BoundInputs {
        let path = std::env::temp_dir().join(format!("tinyq-choose-{}-{n}.npz", std::process::id()));
        let v: Vec<f32> = (0..n * 18).map(|i| ((i * 7919 % 211) as f32 / 105.0 - 1.0).abs()).collect();
        write_npz(&path, &[("x", &NdArray { shape: vec![n, 1, 3, 3, 2], data: ArrayData::F32(v) })]).unwrap();
        let ds = Dataset::open(&path, &LoadOptions::default()).unwrap();
        let b = crate::bind_inputs(g, &ds, &["x".into()]).unwrap();
        std::fs::remove_file(&path).unwrap();
        b
    }

    fn choose(m: &Model) -> CorrectionChoice {
        let calib = samples(&m.graph, 40);
        let candidates = [Pass::Equalize, Pass::BiasCorrect];
        let spec = QuantizeSpec::default();
        choose_corrections(m, &calib, Calibration::MinMax, &spec, &[], &candidates, &|_| {}).unwrap().1
    }

    #[test]
    fn equalization_is_kept_where_it_lowers_the_error_and_not_elsewhere() {
        // h's channels 1000× apart: one int8 scale for h rounds the small channel away.
        let c = choose(&model(0.01, 10.0));
        assert_eq!(c.chosen, ["equalize"], "{c:?}");
        assert!(c.scored[1].1 < c.scored[0].1 / 10.0, "{c:?}");
        // Channels alike: equalization changes next to nothing and is not kept.
        let c = choose(&model(1.0, 1.0));
        assert!(!c.chosen.contains(&"equalize"), "{c:?}");
        assert_eq!(c.samples, 40);
    }

    #[test]
    fn the_choice_and_its_file_do_not_depend_on_the_thread_count() {
        let m = model(0.05, 3.0);
        let calib = samples(&m.graph, 48);
        let candidates = [Pass::Equalize, Pass::BiasCorrect];
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                let spec = QuantizeSpec::default();
                let (st, c) =
                    choose_corrections(&m, &calib, Calibration::Auto, &spec, &[], &candidates, &|_| {}).unwrap();
                let bytes = tinyq_tflite::write_tflite(st.int8.as_ref().unwrap()).unwrap();
                (bytes, c.chosen, c.scored, st.stats, st.ranges)
            })
        };
        let one = run(1);
        // Every score, statistic, range and byte of the file, with one thread or several.
        for threads in [2, 3, 5] {
            assert!(run(threads) == one, "{threads} threads");
        }
    }

    #[test]
    fn only_a_clear_paired_improvement_counts() {
        let old = [1.0, 2.0, 3.0, 4.0];
        assert!(clearly_lower(&[0.5, 1.5, 2.5, 3.5], &old));
        // Lower on average, but one sample much worse: within the noise.
        assert!(!clearly_lower(&[0.0, 0.0, 0.0, 9.5], &old));
        assert!(!clearly_lower(&old, &old));
    }

    #[test]
    fn the_pipeline_runs_its_passes_in_order_and_records_each() {
        use crate::adaround::AdaRoundOptions;
        let ada = Pass::AdaRound(AdaRoundOptions::default());
        let p = passes(Calibration::MinMax, &QuantizeSpec::default(), true, &[Pass::BiasCorrect, ada.clone()]);
        let names: Vec<&str> = p.iter().map(Pass::name).collect();
        assert_eq!(names, ["equalize", "calibrate", "choose-ranges", "quantize", "adaround", "bias-correct"]);
        let m = model(0.01, 10.0);
        let calib = samples(&m.graph, 16);
        let mut st = PtqState::new(&m, &calib);
        // A pass that needs the int8 graph before `quantize` is an error naming it.
        let e = st.clone().run(&[ada], &|_| {}).unwrap_err().to_string();
        assert!(e.contains("adaround") && e.contains("quantize"), "{e}");
        st.run(&p, &|_| {}).unwrap();
        let log: Vec<&str> = st.log.iter().map(|r| r.pass).collect();
        assert_eq!(log, names);
        assert_eq!(st.log[0].detail, "1 layer pairs");
        // The int8 graph is the one `tinyq_quant` gives for the pipeline's ranges, plus the
        // corrections: same structure, int8 weights.
        let q = st.int8.as_ref().unwrap();
        assert_eq!(q.nodes.len(), m.graph.nodes.len());
        assert_eq!(q.tensor(q.nodes[0].inputs[1]).dtype, tinyq_ir::DType::I8);
        // Equalization rewrote the float model the later passes saw.
        assert_ne!(st.model.graph.tensor(1).data, m.graph.tensor(1).data);
    }
}
