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
//! What this crate is not: it knows nothing of graphs, tensors or the IR, and owns no buffers.
//! Faster variants live beside the references in [`fast`] and are tested against them.
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
//! Kernels TFLM also runs on int16 activations (ADD, MAX_POOL_2D, AVERAGE_POOL_2D, MEAN, RESHAPE,
//! PAD) are generic over the storage type ([`QuantizedInt`]: `i8`, `i16`) and their prepare over
//! its quantization ([`ActivationQParams`]); the int8 names (`add_s8`, `prepare_mean_s8`, …) are
//! the same functions. The 16x8 layers with int8 weights live in [`conv16`].
//!
//! Layout conventions follow TFLite: activations NHWC, CONV_2D filters OHWI, DEPTHWISE_CONV_2D
//! filters `[1, H, W, C·M]`, FULLY_CONNECTED filters `[units, depth]`, int32 bias with zero point 0.

mod error;
pub mod fixedpoint;
pub mod padding;
pub mod shape;

pub mod abs;
pub mod add;
pub mod average_pool;
pub mod concatenation;
pub mod conv;
pub mod conv16;
pub mod depthwise_conv;
pub mod dequantize;
pub mod elu;
pub mod fast;
pub mod fully_connected;
pub mod hard_swish;
pub mod leaky_relu;
pub mod log_softmax;
pub mod logistic;
pub mod max_pool;
pub mod maximum_minimum;
pub mod mean;
pub mod mirror_pad;
pub mod mul;
pub mod pad;
pub mod pooling;
pub mod prelu;
pub mod quantize;
pub mod reduce_max;
pub mod requantize;
pub mod reshape;
pub mod resize_bilinear;
pub mod resize_nearest_neighbor;
pub mod softmax;
pub mod strided_slice;
pub mod sub;
pub mod tanh;
pub mod transpose;

pub use conv16::QParamsS16;
pub use error::KernelError;
pub use fixedpoint::{
    calculate_activation_range_quantized, calculate_activation_range_quantized_s16, FusedActivation,
    QuantizedMultiplier, Rounding,
};
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

/// The storage types of quantized activations, int8 and int16: what TFLM's kernels templated on
/// `T` (`AddElementwise<T>`, `MaxPool`/`AveragePool` overloads, `QuantizedMeanOrSum<T, int32_t>`)
/// are instantiated with. Sealed: only `i8` and `i16` implement it.
pub trait QuantizedInt: Copy + Ord + Into<i32> + private::Sealed + 'static {
    /// `std::numeric_limits<T>::lowest()`.
    const MIN: Self;
    /// `std::numeric_limits<T>::max()`.
    const MAX: Self;
    /// The width in bits (8 or 16).
    const BITS: u32;

    /// `static_cast<T>` of a value already clamped to `[MIN, MAX]`; saturates otherwise.
    fn saturate(x: i32) -> Self;
}

impl QuantizedInt for i8 {
    const MIN: Self = i8::MIN;
    const MAX: Self = i8::MAX;
    const BITS: u32 = 8;

    #[inline]
    fn saturate(x: i32) -> Self {
        saturate_s8(x)
    }
}

impl QuantizedInt for i16 {
    const MIN: Self = i16::MIN;
    const MAX: Self = i16::MAX;
    const BITS: u32 = 16;

    #[inline]
    fn saturate(x: i32) -> Self {
        x.clamp(i16::MIN as i32, i16::MAX as i32) as i16
    }
}

/// Per-tensor quantization of an activation stored as [`Self::Int`](ActivationQParams::Int):
/// [`QParamsS8`] (any int8 zero point) or [`QParamsS16`] (symmetric). The `prepare_*` functions of
/// the kernels that TFLM runs on both types are generic over it.
pub trait ActivationQParams: Copy + private::Sealed {
    /// The storage type.
    type Int: QuantizedInt;

    /// Checks the scale, and the zero point against the type's rules.
    fn validate(self, tensor: &'static str) -> Result<Self, KernelError>;

    /// The scale and zero point (as int8 params, the type the shared prepare code computes with).
    fn scale_and_zero_point(self) -> QParamsS8;

    /// TFLM `CalculateActivationRangeQuantized` for an output of this type.
    fn activation_range(self, activation: FusedActivation) -> (i32, i32);
}

impl ActivationQParams for QParamsS8 {
    type Int = i8;

    fn validate(self, tensor: &'static str) -> Result<Self, KernelError> {
        QParamsS8::validate(self, tensor)
    }

    fn scale_and_zero_point(self) -> QParamsS8 {
        self
    }

    fn activation_range(self, activation: FusedActivation) -> (i32, i32) {
        calculate_activation_range_quantized(activation, self)
    }
}

impl ActivationQParams for QParamsS16 {
    type Int = i16;

    fn validate(self, tensor: &'static str) -> Result<Self, KernelError> {
        QParamsS16::validate(self, tensor)
    }

    fn scale_and_zero_point(self) -> QParamsS8 {
        QParamsS8::new(self.scale, self.zero_point)
    }

    fn activation_range(self, activation: FusedActivation) -> (i32, i32) {
        calculate_activation_range_quantized_s16(activation, self.scale)
    }
}

mod private {
    pub trait Sealed {}
    impl Sealed for i8 {}
    impl Sealed for i16 {}
    impl Sealed for super::QParamsS8 {}
    impl Sealed for super::QParamsS16 {}
}

/// Clamps an int32 to the int8 range; the value must already be within `[act_min, act_max]` or
/// the caller wants saturation.
#[inline]
pub(crate) fn saturate_s8(x: i32) -> i8 {
    x.clamp(i8::MIN as i32, i8::MAX as i32) as i8
}
