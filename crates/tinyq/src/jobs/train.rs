//! The train job: the training, calibration and validation sets bound to the model, then
//! quantization-aware training and the `.tflite` bytes of the best epoch.

use std::path::PathBuf;

use tinyq_data::NdArray;
use tinyq_ir::Graph;

use super::{bind_limited, DataSpec, LabelledData};
use crate::error::InFile;
use crate::{
    BoundInputs, Calibration, Loss, Metric, Model, OptimizerKind, RangeMode, Schedule, Supervision, TinyqError,
    TrainOptions, TrainProgress, TrainReport, Validation,
};

/// The training options as a user writes them (the `tinyq train` flags); [`TrainSettings::parse`]
/// checks them and gives the [`TrainOptions`].
#[derive(Clone, Debug)]
pub struct TrainSettings<'a> {
    pub calibration: &'a str,
    pub per_tensor: Option<&'a str>,
    /// int8 or int4 weights (`None`: int8).
    pub weights: Option<&'a str>,
    pub io: &'a str,
    /// adam or sgd.
    pub optimizer: &'a str,
    pub momentum: f32,
    /// Default: 1e-4 for adam, 1e-3 for sgd.
    pub lr: Option<f32>,
    /// kl, mse or cross-entropy; default from the outputs.
    pub loss: Option<&'a str>,
    pub temperature: f32,
    /// learned or ema.
    pub ranges: &'a str,
    /// cosine, constant or step:EVERY:GAMMA.
    pub schedule: &'a str,
    pub metric: Option<&'a str>,
    pub epochs: usize,
    pub batch_size: usize,
    pub seed: u64,
}

impl TrainSettings<'_> {
    pub fn parse(&self) -> Result<TrainOptions, TinyqError> {
        let bad = |m: String| TinyqError::Input(m);
        let calibration: Calibration = self.calibration.parse().map_err(|e| bad(format!("--calibration {e}")))?;
        let io: super::Io = self.io.parse().map_err(|e| bad(format!("--io `{}`: {e}", self.io)))?;
        let (optimizer, default_lr) = match self.optimizer {
            "adam" => (OptimizerKind::adam(), 1e-4),
            "sgd" if (0.0..1.0).contains(&self.momentum) => (OptimizerKind::Sgd { momentum: self.momentum }, 1e-3),
            "sgd" => return Err(bad(format!("--momentum {}: expected a value in [0, 1)", self.momentum))),
            other => return Err(bad(format!("--optimizer `{other}`: expected adam or sgd"))),
        };
        let per_tensor = match self.per_tensor {
            None => super::PerTensor::None,
            Some(p) => p.parse().map_err(|e| bad(format!("--per-tensor={p}: {e}")))?,
        };
        let loss = match self.loss {
            None => None,
            Some("kl") => Some(Loss::Kl { temperature: self.temperature }),
            Some("mse") => Some(Loss::Mse),
            Some("cross-entropy") => Some(Loss::CrossEntropy),
            Some(other) => return Err(bad(format!("--loss `{other}`: expected kl, mse or cross-entropy"))),
        };
        let ranges = match self.ranges {
            "learned" => RangeMode::Learned,
            "ema" => RangeMode::Ema,
            other => return Err(bad(format!("--ranges `{other}`: expected learned or ema"))),
        };
        let schedule = Schedule::parse(self.schedule).ok_or_else(|| {
            bad(format!("--schedule `{}`: expected cosine, constant or step:EVERY:GAMMA", self.schedule))
        })?;
        let metric = match self.metric {
            None => None,
            Some(m) => Some(m.parse::<Metric>().map_err(|e| bad(format!("--metric `{m}`: {e}")))?),
        };
        let (per_tensor, per_tensor_dense) = per_tensor.flags();
        let weights = match self.weights.map(str::parse::<crate::WeightBits>) {
            None => crate::WeightBits::Int8,
            Some(Ok(crate::WeightBits::Mixed)) => {
                return Err(bad("--weights mixed is for `quantize --max-drop`; train takes int8 or int4".into()))
            }
            Some(Ok(w)) => w,
            Some(Err(e)) => return Err(bad(format!("--weights {}: {e}", self.weights.unwrap_or_default()))),
        };
        Ok(TrainOptions {
            calibration,
            weights,
            per_tensor,
            per_tensor_dense,
            loss,
            float_io: io == super::Io::Float,
            ranges,
            epochs: self.epochs,
            batch_size: self.batch_size,
            learning_rate: self.lr.unwrap_or(default_lr),
            optimizer,
            schedule,
            seed: self.seed,
            temperature: self.temperature,
            metric,
        })
    }
}

/// Everything `train` needs besides the float model.
#[derive(Clone, Debug)]
pub struct TrainRequest {
    /// Training samples.
    pub data: DataSpec,
    /// The labels array of the training data; `None`: distillation from the float model.
    pub labels: Option<String>,
    /// Calibration of the starting ranges: its first `calib_samples` samples (with no keys,
    /// `x_calib` when the data holds it); `None`: `calib_samples` spread over the training data.
    pub calib: Option<DataSpec>,
    pub calib_samples: usize,
    /// Labelled validation set: the best epoch on it is kept.
    pub val: Option<LabelledData>,
    pub options: TrainOptions,
    /// The file the result will be written to, for messages.
    pub output: PathBuf,
}

/// The sets bound to the model, ready to train.
pub struct PreparedTrain<'a> {
    model: &'a Model,
    req: &'a TrainRequest,
    data: BoundInputs,
    labels: Option<NdArray>,
    calib: BoundInputs,
    val: Option<(BoundInputs, NdArray)>,
}

/// What `train` produced.
pub struct TrainOutcome {
    /// The INT8 `.tflite` file's bytes.
    pub bytes: Vec<u8>,
    /// The fine-tuned float graph (e.g. to save as ONNX).
    pub float: Graph,
    pub report: TrainReport,
}

impl TrainRequest {
    /// The checks of the options that need no file.
    pub fn check(&self) -> Result<(), TinyqError> {
        let o = &self.options;
        let bad = |m: String| Err(TinyqError::Input(m));
        if !(o.learning_rate.is_finite() && o.learning_rate > 0.0) {
            return bad(format!("--lr {}: expected a positive number", o.learning_rate));
        }
        if o.epochs == 0 {
            return bad("--epochs 0: train for at least one epoch".into());
        }
        if o.batch_size == 0 {
            return bad("--batch-size 0: a batch needs at least one sample".into());
        }
        if !(o.temperature.is_finite() && o.temperature > 0.0) {
            return bad(format!("--temperature {}: expected a positive number", o.temperature));
        }
        Ok(())
    }

    /// Binds the training, calibration and validation sets to `model`.
    pub fn prepare<'a>(&'a self, model: &'a Model) -> Result<PreparedTrain<'a>, TinyqError> {
        self.check()?;
        let (ds, data) = self.data.bind(model)?;
        let labels = match &self.labels {
            None => None,
            Some(key) if ds.has(key) => {
                let y = ds.array(key)?;
                Some(match self.data.limit {
                    Some(n) => super::truncate_rows(y, n),
                    None => y,
                })
            }
            Some(key) => {
                return Err(TinyqError::Input(format!(
                    "{}: no labels array `{key}` (name it with --labels KEY, or train without labels with --distill)",
                    self.data.source.path().display()
                )))
            }
        };
        drop(ds);
        let calib = match &self.calib {
            Some(spec) => {
                let ds = spec.source.open()?;
                let keys = if spec.keys.is_empty() && ds.has("x_calib") {
                    vec!["x_calib".to_string()]
                } else if spec.keys.is_empty() {
                    crate::default_input_keys(&model.graph)
                } else {
                    spec.keys.clone()
                };
                bind_limited(model, &ds, &keys, Some(self.calib_samples))?
            }
            None => data.spread(self.calib_samples),
        };
        let val = match &self.val {
            Some(v) => {
                let ds = v.source.open()?;
                let inputs = bind_limited(model, &ds, std::slice::from_ref(&v.x), None)?;
                let place = PathBuf::from(format!("--val {}", v.source.path().display()));
                let y = ds.array(&v.y).in_file(&place)?;
                Some((inputs, y))
            }
            None => None,
        };
        Ok(PreparedTrain { model, req: self, data, labels, calib, val })
    }
}

impl PreparedTrain<'_> {
    /// Training samples.
    pub fn samples(&self) -> usize {
        self.data.samples
    }

    /// Without labels: the distillation loss and why it was chosen.
    pub fn distill_loss(&self) -> Result<Option<(Loss, String)>, TinyqError> {
        if self.labels.is_some() {
            return Ok(None);
        }
        let g = &self.model.graph;
        let per_sample = g.outputs.first().map_or(1, |&o| g.tensor(o).numel());
        let from_labels = self.val.as_ref().map(|(_, y)| crate::default_metric(y, per_sample));
        let o = &self.req.options;
        crate::distill_loss(g, o.loss, o.metric, from_labels, o.temperature).map(Some)
    }

    /// Trains and serializes the INT8 model of the best epoch.
    pub fn run(&self, progress: &TrainProgress<'_>) -> Result<TrainOutcome, TinyqError> {
        let supervision = match &self.labels {
            Some(y) => Supervision::Labels(y),
            None => Supervision::Distill,
        };
        let validation = self.val.as_ref().map(|(inputs, labels)| Validation { inputs, labels });
        let (int8, float, report) =
            crate::train(self.model, &self.data, &self.calib, supervision, validation, &self.req.options, progress)?;
        let bytes = tinyq_tflite::write_tflite(&int8).in_file(&self.req.output)?;
        Ok(TrainOutcome { bytes, float, report })
    }
}
