//! Quantization arithmetic that does not depend on an engine: calibration statistics and the
//! choice of a range from them, and the TFLite int8 parameter rules.
//!
//! Statistics are streamed: a [`TensorStats`] has a fixed size whatever the number of samples,
//! and two of them [`TensorStats::merge`], so calibration can run in parallel over samples and
//! reduce. Methods other than min/max need a histogram, whose bounds come from a first min/max
//! pass ([`Histogram::new`] takes them).
//!
//! [`quantize_graph`] applies the TFLite int8 rules to a whole graph, one rule per op. The crate
//! does not run models: the facade feeds it the float engine's tensors.

mod concat;
mod params;
mod ptq;
mod range;
mod round;

pub use params::{
    asymmetric_qparams, quantize_bias, quantize_bias_i64, symmetric_int16_scale, symmetric_per_channel,
    symmetric_per_channel_q, ActivationQParams, QuantError,
};
pub use ptq::{
    can_keep_in_float, can_run_16x8, output_rule, quantize_graph, quantize_graph_mixed, quantize_graph_with_float,
    OutputRule, PtqConfig,
};
pub use range::{choose_range, Calibration, Histogram, TensorStats, HISTOGRAM_BINS};
pub use round::{round_f64, round_i32};
