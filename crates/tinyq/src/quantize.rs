//! Post-training quantization: calibrate on real data with the float engine, choose ranges,
//! apply the int8 rules.

use crate::error::InFile;
use rayon::prelude::*;
use serde::Serialize;
use tinyq_float::Plan;
use tinyq_ir::{Graph, Op};
use tinyq_quant::{can_keep_in_float, can_run_16x8, Calibration, Histogram, TensorStats};

use crate::autocal::{auto_ranges, method_name, ranges_for, AutoCalibration};

use crate::{BoundInputs, Model, TinyqError};

#[derive(Clone, Debug)]
pub struct QuantizeOptions {
    pub calibration: Calibration,
    /// One weight scale per tensor for every layer.
    pub per_tensor: bool,
    /// One weight scale per tensor for FULLY_CONNECTED only (convolutions per channel).
    pub per_tensor_dense: bool,
    pub float_io: bool,
    /// Nodes to leave in float (by node name or output tensor name): CONV_2D, DEPTHWISE_CONV_2D,
    /// FULLY_CONNECTED (and RESHAPE, TRANSPOSE), computed in float32 between DEQUANTIZE and
    /// QUANTIZE.
    pub keep_float: Vec<String>,
    /// Nodes to run with int16 activations (conv, depthwise conv and fully connected with int8
    /// weights as TFLM's 16x8 layers; ADD, CONCATENATION, pools, MEAN, RESHAPE), by node or output tensor name;
    /// `["all"]` for every node that has an int16 kernel and is not kept in float.
    pub int16: Vec<String>,
    /// Empirical bias correction on the calibration set ([`crate::corrections::bias_correction`]).
    pub bias_correction: bool,
    /// Cross-layer equalization of the float model first ([`crate::corrections::equalize`]).
    pub equalize: bool,
    /// With `auto` calibration: try each correction not asked for above and keep it only where
    /// it lowers the output error on the calibration set ([`crate::choose`]).
    pub choose_corrections: bool,
    /// AdaRound: the int8 weights rounded up or down as learned on the calibration set
    /// ([`crate::adaround`]).
    pub adaround: bool,
    /// The width of conv, depthwise conv and fully connected weights.
    pub weights: WeightBits,
    /// The TFLM kernels the file is for (`None`: any). Int4 layers a kernel set computes
    /// differently from TFLM's reference kernels ([`int4_caveats`]) keep int8 weights unless
    /// the file is for the reference kernels only.
    pub kernels: Option<tinyq_arena::Kernels>,
}

/// The width of the layers' weights (`--weights`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WeightBits {
    /// Every layer int8.
    #[default]
    Int8,
    /// Every conv, depthwise conv and fully connected layer with int8 activations int4 (as TFLM
    /// takes them: per channel for convolutions, per tensor for fully connected layers), with
    /// AdaRound unless `choose_corrections` is off.
    Int4,
    /// Per layer under `--max-drop` ([`crate::mixed`]): int4 where the accuracy budget allows,
    /// the first and last layers and the most sensitive ones int8.
    Mixed,
}

impl std::str::FromStr for WeightBits {
    type Err = String;
    fn from_str(s: &str) -> Result<WeightBits, String> {
        match s {
            "int8" => Ok(WeightBits::Int8),
            "int4" => Ok(WeightBits::Int4),
            "mixed" => Ok(WeightBits::Mixed),
            _ => Err("expected int8, int4 or mixed".into()),
        }
    }
}

/// The layers of `g` whose weights may be int4 under `bits`: none for [`WeightBits::Int8`], else
/// every conv, depthwise conv and fully connected layer not kept in float, run with int16
/// activations or computed differently by some kernel set ([`int4_caveats`]);
/// [`WeightBits::Mixed`] chooses among them.
pub fn int4_node_indices(
    opts: &QuantizeOptions,
    g: &Graph,
    float_nodes: &[usize],
    int16_nodes: &[usize],
) -> Vec<usize> {
    let caveat_free =
        |k: usize| opts.kernels == Some(tinyq_arena::Kernels::Reference) || int4_caveat(g, &g.nodes[k]).is_none();
    match opts.weights {
        WeightBits::Int8 => Vec::new(),
        WeightBits::Int4 | WeightBits::Mixed => (0..g.nodes.len())
            .filter(|k| g.nodes[*k].op.int4_weights_input().is_some() && caveat_free(*k))
            .filter(|k| !float_nodes.contains(k) && !int16_nodes.contains(k))
            .collect(),
    }
}

/// Why layer `n` of `g` keeps int8 weights under `--weights int4|mixed` although TFLM takes int4
/// ([`tinyq_ir::Op::int4_caveat`]).
pub(crate) fn int4_caveat(g: &Graph, n: &tinyq_ir::Node) -> Option<&'static str> {
    let shapes: Vec<&[usize]> = n.inputs.iter().map(|&t| g.tensor(t).shape.as_slice()).collect();
    n.op.int4_caveat(&shapes)
}

/// One line per layer of `g` that int4 weights would suit but that keeps int8 weights under
/// `opts` so that every kernel set the file is for computes it alike.
pub fn int4_caveats(g: &Graph, opts: &QuantizeOptions) -> Vec<String> {
    if opts.weights == WeightBits::Int8 || opts.kernels == Some(tinyq_arena::Kernels::Reference) {
        return Vec::new();
    }
    g.nodes
        .iter()
        .filter_map(|n| int4_caveat(g, n).map(|why| format!("layer {} keeps int8 weights: {why}", n.name)))
        .collect()
}

/// Indices of the nodes named in `names` (by node or output tensor name) to run with int16
/// activations; an error names a node that does not exist or has no int16 kernel. `["all"]`
/// (when no node has that name) picks every node with an int16 kernel outside `float_nodes`.
pub fn int16_node_indices(g: &Graph, names: &[String], float_nodes: &[usize]) -> Result<Vec<usize>, TinyqError> {
    let named_all = g.nodes.iter().any(|n| n.name == "all" || n.outputs.iter().any(|&o| g.tensor(o).name == "all"));
    if !named_all && names.iter().any(|n| n == "all") {
        if names.len() > 1 {
            return Err(TinyqError::Input(
                "--int16 all stands alone: it names every layer with an int16 kernel".into(),
            ));
        }
        return Ok((0..g.nodes.len()).filter(|k| can_run_16x8(&g.nodes[*k].op) && !float_nodes.contains(k)).collect());
    }
    node_indices(
        g,
        names,
        "--int16",
        can_run_16x8,
        "only conv, depthwise conv, fully connected, add, concatenation, max/average pool, mean and reshape nodes have int16 kernels",
    )
}

/// Indices of the nodes named (by node name or by output tensor name) in `names`; an error names
/// a node that does not exist or cannot be kept in float.
pub fn float_node_indices(g: &Graph, names: &[String]) -> Result<Vec<usize>, TinyqError> {
    node_indices(
        g,
        names,
        "--keep-float",
        can_keep_in_float,
        "only conv, depthwise conv, fully connected, reshape and transpose nodes can stay in float",
    )
}

/// Sorted, deduplicated indices of the nodes named in `names` (by node or output tensor name)
/// for the option `flag`; an error names a node that does not exist or whose op fails `allowed`
/// (`rule` says which ops pass).
fn node_indices(
    g: &Graph,
    names: &[String],
    flag: &str,
    allowed: fn(&Op) -> bool,
    rule: &str,
) -> Result<Vec<usize>, TinyqError> {
    let mut found = Vec::new();
    for name in names {
        let k = g
            .nodes
            .iter()
            .position(|n| &n.name == name || n.outputs.iter().any(|&o| &g.tensor(o).name == name))
            .ok_or_else(|| TinyqError::Input(format!("{flag} `{name}`: no node or node output has that name")))?;
        let n = &g.nodes[k];
        if !allowed(&n.op) {
            return Err(TinyqError::Input(format!("{flag} `{name}`: node `{}` is {}; {rule}", n.name, n.op.name())));
        }
        if !found.contains(&k) {
            found.push(k);
        }
    }
    found.sort_unstable();
    Ok(found)
}

/// The range rows of the activations of `g` quantized as `q` (tensor ids shared).
pub(crate) fn range_rows(
    g: &Graph,
    q: &Graph,
    stats: &[TensorStats],
    ranges: &[Option<(f32, f32)>],
    methods: &[Calibration],
) -> Vec<RangeRow> {
    (0..g.tensors.len())
        .filter_map(|t| {
            let chosen = ranges[t]?;
            // quantize_graph keeps tensor ids, so the int8 tensor `t` is the float tensor `t`.
            let qp = q.tensors[t].qparams.as_ref()?;
            Some(RangeRow {
                tensor: g.tensor(t).name.clone(),
                observed: (stats[t].min, stats[t].max),
                chosen,
                method: method_name(methods[t]),
                scale: qp.scale[0],
                zero_point: qp.zero_point[0],
            })
        })
        .collect()
}

/// The range chosen for one activation tensor.
#[derive(Clone, Debug, Serialize)]
pub struct RangeRow {
    pub tensor: String,
    pub observed: (f32, f32),
    pub chosen: (f32, f32),
    /// The calibration method the range comes from.
    pub method: String,
    pub scale: f32,
    pub zero_point: i32,
}

/// Statistics of every tensor the float engine computes over all samples (one pass per
/// [`TensorStats`] kind; memory does not grow with the number of samples).
pub fn calibrate(
    model: &Model,
    inputs: &BoundInputs,
    method: Calibration,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<Vec<TensorStats>, TinyqError> {
    let plan = Plan::new(&model.graph).in_file(&model.path)?;
    let n_tensors = model.graph.tensors.len();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let passes = if method.needs_histogram() { 2 } else { 1 };
    let pass = |seed: Vec<TensorStats>| -> Result<Vec<TensorStats>, TinyqError> {
        (0..inputs.samples)
            .into_par_iter()
            .try_fold(
                || seed.clone(),
                |mut acc, i| {
                    let sample =
                        inputs.sample_f32(i).ok_or_else(|| TinyqError::Input("calibration needs float data".into()))?;
                    plan.run_observed(&sample, &mut |t, v| acc[t].observe(v))?;
                    progress(done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) / passes + 1);
                    Ok(acc)
                },
            )
            .try_reduce(
                || seed.clone(),
                |mut a, b| {
                    a.iter_mut().zip(&b).for_each(|(x, y)| x.merge(y));
                    Ok(a)
                },
            )
    };
    let mut stats = pass(vec![TensorStats::default(); n_tensors])?;
    check_finite(&model.graph, &stats)?;
    if method.needs_histogram() {
        stats = pass(histogram_seed(&stats))?;
    }
    Ok(stats)
}

/// Activations of every calibration sample, kept by [`calibrate_kept`] for later passes.
pub(crate) type KeptActivations = std::sync::Arc<Vec<tinyq_float::Activations>>;

/// Bytes of activations [`calibrate_kept`] holds at most.
pub const KEPT_BYTES: usize = 256 << 20;

/// [`calibrate`], keeping every sample's activations when they fit in [`KEPT_BYTES`] (and the
/// method makes a second pass, or the set is no larger than the [`crate::autocal::SAMPLES`] that
/// `auto` calibration compares on): the model then runs once per sample, and the histogram pass,
/// the `auto` search and the choice of corrections reuse its activations.
pub(crate) fn calibrate_kept(
    model: &Model,
    inputs: &BoundInputs,
    method: Calibration,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<(Vec<TensorStats>, Option<KeptActivations>), TinyqError> {
    let g = &model.graph;
    let per_sample: usize = g.tensors.iter().filter(|t| !t.is_constant()).map(|t| t.numel() * 4).sum();
    let reused = method.needs_histogram() || inputs.samples <= crate::autocal::SAMPLES;
    if !reused || per_sample.saturating_mul(inputs.samples) > KEPT_BYTES {
        return Ok((calibrate(model, inputs, method, progress)?, None));
    }
    let plan = Plan::new(g).in_file(&model.path)?;
    let done = std::sync::atomic::AtomicUsize::new(0);
    let acts: Vec<tinyq_float::Activations> = (0..inputs.samples)
        .into_par_iter()
        .map(|i| {
            let sample =
                inputs.sample_f32(i).ok_or_else(|| TinyqError::Input("calibration needs float data".into()))?;
            let a = plan.run_observed(&sample, &mut |_, _| {})?;
            progress(done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1);
            Ok(a)
        })
        .collect::<Result<_, TinyqError>>()?;
    // Per tensor (in parallel), over the samples in order: the statistics do not depend on how
    // the work is split.
    let values = |t: usize| acts.iter().filter_map(move |a| a.values[t].as_deref());
    let stats: Vec<TensorStats> = (0..g.tensors.len())
        .into_par_iter()
        .map(|t| {
            let mut s = TensorStats::default();
            values(t).for_each(|v| s.observe(v));
            s
        })
        .collect();
    check_finite(g, &stats)?;
    // The histogram pass: the values are finite (checked above) and min, max and count known.
    let stats = if method.needs_histogram() {
        let seeds = histogram_seed(&stats);
        stats
            .into_par_iter()
            .zip(seeds)
            .enumerate()
            .map(|(t, (s, seed))| {
                let hist = seed.hist.map(|mut h| {
                    values(t).for_each(|v| h.add(v));
                    h
                });
                TensorStats { hist, ..s }
            })
            .collect()
    } else {
        stats
    };
    Ok((stats, Some(std::sync::Arc::new(acts))))
}

/// An error naming the first tensor that took NaN or infinite values.
fn check_finite(g: &Graph, stats: &[TensorStats]) -> Result<(), TinyqError> {
    match stats.iter().enumerate().find(|(_, s)| s.nonfinite > 0) {
        Some((t, s)) => Err(TinyqError::Engine(format!(
            "calibration: tensor `{}` took {} NaN/Inf values (of {}): check the data and the model",
            g.tensor(t).name,
            s.nonfinite,
            s.count
        ))),
        None => Ok(()),
    }
}

/// Empty statistics with a histogram over each seen tensor's range (widened to contain 0).
fn histogram_seed(stats: &[TensorStats]) -> Vec<TensorStats> {
    stats
        .iter()
        .map(|s| TensorStats {
            hist: (s.count > 0).then(|| Histogram::new(s.min.min(0.0), s.max.max(0.0))),
            ..TensorStats::default()
        })
        .collect()
}

/// The ranges of `opts.calibration` (for `auto`, chosen per tensor by [`auto_ranges`], on the
/// `kept` activations of the calibration samples if [`calibrate_kept`] kept them), the method of
/// each tensor and, for `auto`, what the choice did.
pub(crate) fn chosen_ranges(
    model: &Model,
    calib: &BoundInputs,
    stats: &[TensorStats],
    method: Calibration,
    kept: Option<&KeptActivations>,
) -> Result<crate::autocal::ChosenRanges<Option<AutoCalibration>>, TinyqError> {
    if method == Calibration::Auto {
        let (r, m, a) = auto_ranges(model, calib, stats, kept)?;
        return Ok((r, m, Some(a)));
    }
    Ok((ranges_for(&model.graph, stats, method), vec![method; model.graph.tensors.len()], None))
}

/// Multiply-adds up to which AdaRound is among the corrections the default tries (about a
/// tenth of a second of one core over the three runs the choice makes): the default keeps its
/// time, `--adaround` applies it to larger models.
pub const ADAROUND_DEFAULT_WORK: f64 = 1e8;

/// What a quantization did: the int8 graph, the range of each activation, what `auto`
/// calibration and the choice of corrections decided, and each pass run.
#[derive(Clone, Debug)]
pub struct Quantized {
    pub graph: Graph,
    pub ranges: Vec<RangeRow>,
    pub auto: Option<AutoCalibration>,
    /// With `auto` calibration (unless corrections are off): the corrections kept and why.
    pub corrections: Option<crate::choose::CorrectionChoice>,
    pub passes: Vec<crate::pipeline::PassRecord>,
}

/// Calibrates on `calib` and returns the int8 graph with the range chosen for each activation
/// (and, with `auto` calibration, what the automatic choice did).
pub fn quantize(
    model: &Model,
    calib: &BoundInputs,
    opts: &QuantizeOptions,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<(Graph, Vec<RangeRow>, Option<AutoCalibration>), TinyqError> {
    let q = quantize_passes(model, calib, opts, progress)?;
    Ok((q.graph, q.ranges, q.auto))
}

/// [`quantize`] as the pipeline of passes ([`crate::pipeline`]): the corrections the options
/// force, and with `auto` calibration and `opts.choose_corrections` the others each kept only
/// where it lowers the output error on the calibration set ([`crate::choose`]).
pub fn quantize_passes(
    model: &Model,
    calib: &BoundInputs,
    opts: &QuantizeOptions,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<Quantized, TinyqError> {
    if opts.weights == WeightBits::Mixed {
        return Err(TinyqError::Input(
            "--weights mixed chooses per layer under an accuracy budget: it needs --data and --max-drop".into(),
        ));
    }
    quantize_passes_int4(model, calib, opts, None, progress)
}

/// [`quantize_passes`] with the int4 layers given (`None`: as `opts.weights` says).
pub(crate) fn quantize_passes_int4(
    model: &Model,
    calib: &BoundInputs,
    opts: &QuantizeOptions,
    int4: Option<&[usize]>,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<Quantized, TinyqError> {
    let (st, corrections) = ptq_state(model, calib, opts, int4, progress)?;
    let graph = st.int8.ok_or_else(|| TinyqError::Model("the pipeline ran no quantize pass".into()))?;
    let ranges = range_rows(&st.model.graph, &graph, &st.stats, &st.ranges, &st.methods);
    Ok(Quantized { graph, ranges, auto: st.auto, corrections, passes: st.log })
}

/// The pipeline's state after [`quantize_passes_int4`]'s passes (the float model it quantized,
/// possibly equalized, its ranges and the int8 graph), and the corrections chosen.
pub(crate) fn ptq_state<'a>(
    model: &Model,
    calib: &'a BoundInputs,
    opts: &QuantizeOptions,
    int4: Option<&[usize]>,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<(crate::pipeline::PtqState<'a>, Option<crate::choose::CorrectionChoice>), TinyqError> {
    use crate::pipeline::{passes, Pass, PtqState, QuantizeSpec};
    if calib.samples < 2 {
        return Err(TinyqError::Input(format!(
            "calibration needs at least 2 samples, got {} (a few hundred representative samples is typical)",
            calib.samples
        )));
    }
    let g = &model.graph;
    let float_nodes = float_node_indices(g, &opts.keep_float)?;
    let int16_nodes = int16_node_indices(g, &opts.int16, &float_nodes)?;
    let int4_nodes = match int4 {
        Some(k) => k.to_vec(),
        None => int4_node_indices(opts, g, &float_nodes, &int16_nodes),
    };
    // AdaRound is on for int4 layers (it matters most at 4 bits) unless corrections are off.
    let adaround = opts.adaround || (!int4_nodes.is_empty() && opts.choose_corrections);
    let spec = QuantizeSpec {
        per_tensor: opts.per_tensor,
        per_tensor_dense: opts.per_tensor_dense,
        float_io: opts.float_io,
        float_nodes,
        int16_nodes,
        int4_nodes,
    };
    let mut forced = Vec::new();
    let all = [
        (opts.equalize, Pass::Equalize),
        (adaround, Pass::AdaRound(crate::adaround::AdaRoundOptions::default())),
        (opts.bias_correction, Pass::BiasCorrect),
    ];
    forced.extend(all.iter().filter(|(on, _)| *on).map(|(_, p)| p.clone()));
    // AdaRound is tried by default only where it is cheap: the choice runs it three times.
    let cheap = |p: &Pass| match p {
        Pass::AdaRound(o) => crate::adaround::work(g, o) <= ADAROUND_DEFAULT_WORK,
        _ => true,
    };
    let candidates: Vec<Pass> = all.iter().filter(|(on, p)| !*on && cheap(p)).map(|(_, p)| p.clone()).collect();
    let (st, corrections) = if opts.choose_corrections && opts.calibration == Calibration::Auto {
        let (st, choice) =
            crate::choose::choose_corrections(model, calib, opts.calibration, &spec, &forced, &candidates, progress)?;
        (st, Some(choice))
    } else {
        let fitted: Vec<Pass> = forced.iter().filter(|p| p.is_fitted()).cloned().collect();
        let mut st = PtqState::new(model, calib);
        st.run(&passes(opts.calibration, &spec, opts.equalize, &fitted), progress)?;
        (st, None)
    };
    Ok((st, corrections))
}
