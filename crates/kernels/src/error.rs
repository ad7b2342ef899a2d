use std::fmt;

use crate::QParamsS8;

/// Why a `prepare_*` function refused its parameters. Every field is `Copy`, so building an error
/// never allocates; the caller adds context (node name, op) when wrapping it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum KernelError {
    /// A scale is zero, negative, infinite or NaN.
    InvalidScale { tensor: &'static str, scale: f32 },
    /// A per-channel scale is zero, negative, infinite or NaN.
    InvalidChannelScale { tensor: &'static str, channel: usize, scale: f32 },
    /// A zero point lies outside the storage type's range, or is not 0 where it must be.
    InvalidZeroPoint { tensor: &'static str, zero_point: i32 },
    /// A real multiplier cannot be represented the way the TFLM kernel needs it.
    MultiplierOutOfRange { what: &'static str, multiplier: f64, requirement: &'static str },
    /// Output quantization differs from what the kernel hard-codes or requires.
    QParamsMismatch { tensor: &'static str, expected: QParamsS8, actual: QParamsS8 },
    /// A dimension, count or length disagrees with another one.
    ShapeMismatch { what: &'static str, expected: usize, actual: usize },
    /// A shape, axis or option value is invalid on its own.
    InvalidShape { what: &'static str },
    /// Allowed by the format but not supported by this reference (or by TFLM).
    Unsupported { what: &'static str },
}

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidScale { tensor, scale } => {
                write!(f, "{tensor}: scale {scale:e} must be finite and > 0")
            }
            Self::InvalidChannelScale { tensor, channel, scale } => {
                write!(f, "{tensor}: scale {scale:e} of channel {channel} must be finite and > 0")
            }
            Self::InvalidZeroPoint { tensor, zero_point } => {
                write!(f, "{tensor}: zero point {zero_point} is not allowed here")
            }
            Self::MultiplierOutOfRange { what, multiplier, requirement } => {
                write!(f, "{what}: real multiplier {multiplier:e} out of range (needs {requirement})")
            }
            Self::QParamsMismatch { tensor, expected, actual } => write!(
                f,
                "{tensor}: quantization (scale {:e}, zero point {}) must be (scale {:e}, zero point {})",
                actual.scale, actual.zero_point, expected.scale, expected.zero_point
            ),
            Self::ShapeMismatch { what, expected, actual } => write!(f, "{what}: expected {expected}, got {actual}"),
            Self::InvalidShape { what } => write!(f, "invalid shape or option: {what}"),
            Self::Unsupported { what } => write!(f, "unsupported: {what}"),
        }
    }
}

impl std::error::Error for KernelError {}
