//! Post-training quantization as a pipeline of named passes over one state.
//!
//! `calibrate → choose ranges → quantize`, with the corrections from the literature around it:
//! `equalize` (cross-layer equalization of the float model, before calibration), `adaround`
//! (learned rounding of the int8 weights) and `bias-correct` (empirical bias correction), each a
//! [`Pass`]. [`crate::quantize`] runs the passes the options name; with `auto` calibration it also
//! runs [`crate::choose`], which keeps each correction only where it lowers the output error on
//! the calibration set. The accuracy-budget search starts from the same `calibrate` and `choose
//! ranges` passes ([`calibrated`]); quantization-aware training from those and, with `auto`
//! calibration, the equalization the choice keeps ([`training_start`]).

use std::time::Instant;

use serde::Serialize;
use tinyq_ir::Graph;
use tinyq_quant::{quantize_graph_mixed, Calibration, PtqConfig, TensorStats};

use crate::autocal::{AutoCalibration, Ranges};
use crate::error::InFile;
use crate::{BoundInputs, Model, TinyqError};

/// One step of post-training quantization.
#[derive(Clone, Debug, PartialEq)]
pub enum Pass {
    /// Cross-layer equalization of the float model ([`crate::corrections::equalize`]).
    Equalize,
    /// Statistics of every tensor on the calibration set (histograms when the method needs them).
    Calibrate(Calibration),
    /// A range per activation from the statistics (`auto`: by the error it causes downstream).
    ChooseRanges(Calibration),
    /// The TFLite int8 rules over the whole graph ([`tinyq_quant::quantize_graph_mixed`]).
    Quantize(QuantizeSpec),
    /// Learned rounding of the weights, layer by layer ([`crate::adaround`]).
    AdaRound(crate::adaround::AdaRoundOptions),
    /// Empirical bias correction of the int8 graph ([`crate::corrections::bias_correction`]).
    BiasCorrect,
}

/// How the int8 rules are applied: weight granularity, edges, layers kept in float or run with
/// int16 activations (node indices of the float graph).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QuantizeSpec {
    pub per_tensor: bool,
    pub per_tensor_dense: bool,
    pub float_io: bool,
    pub float_nodes: Vec<usize>,
    pub int16_nodes: Vec<usize>,
    /// Layers whose weights are int4 ([`tinyq_quant::PtqConfig::int4_nodes`]).
    pub int4_nodes: Vec<usize>,
}

impl Pass {
    /// The pass's name, as the summary and `--json` give it.
    pub fn name(&self) -> &'static str {
        match self {
            Pass::Equalize => "equalize",
            Pass::Calibrate(_) => "calibrate",
            Pass::ChooseRanges(_) => "choose-ranges",
            Pass::Quantize(_) => "quantize",
            Pass::AdaRound(_) => "adaround",
            Pass::BiasCorrect => "bias-correct",
        }
    }

    /// Whether the pass learns from calibration data after the ranges are set (so that its
    /// benefit must be measured on samples it did not see).
    pub fn is_fitted(&self) -> bool {
        matches!(self, Pass::AdaRound(_) | Pass::BiasCorrect)
    }
}

/// What one pass did.
#[derive(Clone, Debug, Serialize)]
pub struct PassRecord {
    pub pass: &'static str,
    pub seconds: f64,
    /// A short account (`3 layer pairs`, `12 of 14 layers`, …).
    pub detail: String,
}

/// The state the passes read and write.
#[derive(Clone)]
pub struct PtqState<'a> {
    /// The float model the passes see (equalization rewrites its weights, not its function).
    pub model: Model,
    /// The calibration samples the passes learn from.
    pub calib: &'a BoundInputs,
    pub stats: Vec<TensorStats>,
    /// The calibration samples' activations, when calibration kept them (small sets).
    kept: Option<crate::quantize::KeptActivations>,
    pub ranges: Ranges,
    /// The calibration method each range comes from.
    pub methods: Vec<Calibration>,
    pub auto: Option<AutoCalibration>,
    /// The int8 graph, once `quantize` ran.
    pub int8: Option<Graph>,
    pub log: Vec<PassRecord>,
}

impl<'a> PtqState<'a> {
    pub fn new(model: &Model, calib: &'a BoundInputs) -> PtqState<'a> {
        PtqState {
            model: model.clone(),
            calib,
            stats: Vec::new(),
            kept: None,
            ranges: Vec::new(),
            methods: Vec::new(),
            auto: None,
            int8: None,
            log: Vec::new(),
        }
    }

    /// The float model's outputs on the calibration samples `picks` (per output, samples back to
    /// back), when calibration kept the activations of every sample.
    pub(crate) fn kept_outputs(&self, picks: &[usize]) -> Option<Vec<Vec<f32>>> {
        let kept = self.kept.as_ref().filter(|k| k.len() == self.calib.samples)?;
        let g = &self.model.graph;
        g.outputs
            .iter()
            .map(|&o| picks.iter().map(|&i| kept.get(i)?.get(o)).collect::<Option<Vec<_>>>().map(|v| v.concat()))
            .collect()
    }

    /// Lets go of the activations calibration kept (the later passes do not read them).
    pub(crate) fn drop_kept(&mut self) {
        self.kept = None;
    }

    /// The int8 graph, or an error naming the pass that needs it.
    fn int8_mut(&mut self, pass: &str) -> Result<&mut Graph, TinyqError> {
        self.int8.as_mut().ok_or_else(|| TinyqError::Model(format!("the {pass} pass needs the quantize pass first")))
    }

    /// Runs `passes` in order, recording each.
    pub fn run(&mut self, passes: &[Pass], progress: &(dyn Fn(usize) + Sync)) -> Result<(), TinyqError> {
        passes.iter().try_for_each(|p| self.run_pass(p, progress))
    }

    /// Runs one pass and records it.
    pub fn run_pass(&mut self, pass: &Pass, progress: &(dyn Fn(usize) + Sync)) -> Result<(), TinyqError> {
        let start = Instant::now();
        let detail = match pass {
            Pass::Equalize => {
                let (g, pairs) = crate::corrections::equalize(&self.model.graph);
                self.model.graph = g;
                self.kept = None;
                format!("{pairs} layer pairs")
            }
            Pass::Calibrate(m) => {
                (self.stats, self.kept) = crate::quantize::calibrate_kept(&self.model, self.calib, *m, progress)?;
                format!("{} samples", self.calib.samples)
            }
            Pass::ChooseRanges(m) => {
                let (model, calib, kept) = (&self.model, self.calib, self.kept.as_ref());
                let (r, methods, auto) = crate::quantize::chosen_ranges(model, calib, &self.stats, *m, kept)?;
                (self.ranges, self.methods, self.auto) = (r, methods, auto);
                self.auto.as_ref().map_or_else(|| crate::autocal::method_name(*m), |a| format!("auto: {}", a.chosen))
            }
            Pass::Quantize(spec) => {
                let cfg = PtqConfig {
                    per_tensor: spec.per_tensor,
                    per_tensor_dense: spec.per_tensor_dense,
                    float_io: spec.float_io,
                    int4_nodes: spec.int4_nodes.clone(),
                };
                let g = &self.model.graph;
                let q = quantize_graph_mixed(g, &self.ranges, &cfg, &spec.float_nodes, &spec.int16_nodes)
                    .in_file(&self.model.path)?;
                self.int8 = Some(q);
                format!("{} nodes", g.nodes.len())
            }
            Pass::AdaRound(o) => {
                let (model, calib) = (self.model.clone(), self.calib);
                let n = crate::adaround::adaround(&model, self.int8_mut("adaround")?, calib, o)?;
                format!("{n} layers")
            }
            Pass::BiasCorrect => {
                let (model, calib) = (self.model.clone(), self.calib);
                let n = crate::corrections::bias_correction(&model, self.int8_mut("bias-correct")?, calib)?;
                format!("{n} layers")
            }
        };
        self.log.push(PassRecord { pass: pass.name(), seconds: start.elapsed().as_secs_f64(), detail });
        Ok(())
    }
}

/// The passes of a quantization: `equalize` first when asked, then calibrate, choose ranges and
/// quantize, then `fitted` (AdaRound before bias correction, which corrects what rounding left).
pub fn passes(method: Calibration, spec: &QuantizeSpec, equalize: bool, fitted: &[Pass]) -> Vec<Pass> {
    let mut p = Vec::new();
    if equalize {
        p.push(Pass::Equalize);
    }
    p.extend([Pass::Calibrate(method), Pass::ChooseRanges(method), Pass::Quantize(spec.clone())]);
    p.extend(fitted.iter().filter(|f| matches!(f, Pass::AdaRound(_))).cloned());
    p.extend(fitted.iter().filter(|f| matches!(f, Pass::BiasCorrect)).cloned());
    p
}

/// The statistics and ranges of `model` on `calib` (the `calibrate` and `choose ranges` passes):
/// where the accuracy-budget search and quantization-aware training start from.
pub fn calibrated<'a>(
    model: &Model,
    calib: &'a BoundInputs,
    method: Calibration,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<PtqState<'a>, TinyqError> {
    let mut st = PtqState::new(model, calib);
    st.run(&[Pass::Calibrate(method), Pass::ChooseRanges(method)], progress)?;
    st.drop_kept();
    Ok(st)
}

/// Where quantization-aware training starts: with `auto` calibration, the plain pipeline or the
/// equalized one, as [`crate::choose`] decides (the fitted corrections are left to training);
/// otherwise [`calibrated`].
pub fn training_start<'a>(
    model: &Model,
    calib: &'a BoundInputs,
    method: Calibration,
    spec: &QuantizeSpec,
) -> Result<PtqState<'a>, TinyqError> {
    if method != Calibration::Auto {
        return calibrated(model, calib, method, &|_| {});
    }
    Ok(crate::choose::choose_corrections(model, calib, method, spec, &[], &[Pass::Equalize], &|_| {})?.0)
}
