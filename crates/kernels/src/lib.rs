//! Integer reference kernels that reproduce TensorFlow Lite Micro's int8 arithmetic bit for bit.
//!
//! Every kernel mirrors one TFLM reference function (the doc comment names the source file, in
//! `tensorflow/tflite-micro` unless stated otherwise) and is split in two:
//!
//! * a fallible `prepare_*` function that does all float → fixed-point work (multipliers, shifts,
//!   activation ranges, radii) with exactly TFLM's mix of `f32` and `f64`, validates the
//!   parameters and returns a plain params struct;
//! * an infallible eval function over slices that only does integer arithmetic and never
//!   allocates. It panics only when the slices disagree with the params it was given, which is a
//!   bug in the caller, not bad user input.
//!
//! What this crate is not: it knows nothing of graphs, tensors or the IR, owns no buffers, and has
//! no fast paths. A faster variant must live beside the reference and be tested against it.
//!
//! Key decision: the default rounding is TFLM's default build, *double rounding*
//! (`SaturatingRoundingDoublingHighMul` followed by `RoundingDivideByPOT`), because
//! `TFLITE_SINGLE_ROUNDING` is never defined in TFLM's build files. Single rounding (a LiteRT build
//! option) is available only through the explicit [`Rounding`] argument of the `prepare_*`
//! functions; nothing switches it silently.
//!
//! Checked against TFLM: `scripts/dump_tflm_ops.py` records every op of a model as the
//! `tflite-micro` interpreter ran it, `scripts/make_sweep_model.py` builds single-op models for
//! the kernels the published models lack, and `examples/tflm_replay.rs` re-runs each op here and
//! compares bytes.
//!
//! Layout conventions follow TFLite: activations NHWC, CONV_2D filters OHWI, DEPTHWISE_CONV_2D
//! filters `[1, H, W, C·M]`, FULLY_CONNECTED filters `[units, depth]`, int32 bias with zero point 0.

mod error;
pub mod fixedpoint;
pub mod padding;
pub mod shape;

pub mod add;
pub mod average_pool;
pub mod concatenation;
pub mod conv;
pub mod conv16;
pub mod depthwise_conv;
pub mod dequantize;
pub mod fully_connected;
pub mod hard_swish;
pub mod leaky_relu;
pub mod logistic;
pub mod max_pool;
pub mod mean;
pub mod mul;
pub mod pad;
pub mod pooling;
pub mod quantize;
pub mod requantize;
pub mod reshape;
pub mod softmax;
pub mod sub;
pub mod tanh;
pub mod transpose;

pub use error::KernelError;
pub use fixedpoint::{calculate_activation_range_quantized, calculate_activation_range_quantized_s16, FusedActivation, QuantizedMultiplier, Rounding};
pub use padding::{Padding, PaddingValues};
pub use shape::{BroadcastShapes, MAX_DIMS};

/// Per-tensor quantization parameters of an int8 tensor: `real = (q − zero_point) × scale`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QParamsS8 {
    pub scale: f32,
    pub zero_point: i32,
}

impl QParamsS8 {
    pub fn new(scale: f32, zero_point: i32) -> Self {
        Self { scale, zero_point }
    }

    /// Checks that the scale is finite and positive and the zero point fits in int8.
    pub fn validate(self, tensor: &'static str) -> Result<Self, KernelError> {
        check_scale(tensor, self.scale)?;
        if !(i8::MIN as i32..=i8::MAX as i32).contains(&self.zero_point) {
            return Err(KernelError::InvalidZeroPoint { tensor, zero_point: self.zero_point });
        }
        Ok(self)
    }
}

/// Fails unless `a` and `b` are exactly equal, as TFLM requires for CONCATENATION inputs, and as
/// data-movement ops (RESHAPE, PAD, TRANSPOSE) assume.
pub fn check_same_qparams_s8(tensor: &'static str, a: QParamsS8, b: QParamsS8) -> Result<(), KernelError> {
    if a.scale.to_bits() != b.scale.to_bits() || a.zero_point != b.zero_point {
        return Err(KernelError::QParamsMismatch { tensor, expected: b, actual: a });
    }
    Ok(())
}

pub(crate) fn check_scale(tensor: &'static str, scale: f32) -> Result<(), KernelError> {
    if scale.is_finite() && scale > 0.0 {
        Ok(())
    } else {
        Err(KernelError::InvalidScale { tensor, scale })
    }
}

/// Clamps an int32 to the int8 range; the value must already be within `[act_min, act_max]` or
/// the caller wants saturation.
#[inline]
pub(crate) fn saturate_s8(x: i32) -> i8 {
    x.clamp(i8::MIN as i32, i8::MAX as i32) as i8
}
