//! Activation parameters. Specs: ONNX `Clip`, `LeakyRelu`, `Softmax`; TFLite `RELU`, `RELU6`,
//! `LEAKY_RELU`, `SOFTMAX` (over the last axis, with `beta`).

/// `min(max(x, min), max)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Clip {
    pub min: f32,
    pub max: f32,
}

/// `x` for `x >= 0`, `alpha * x` otherwise.
#[derive(Clone, Debug, PartialEq)]
pub struct LeakyRelu {
    pub alpha: f32,
}

/// `exp(beta * x_i) / sum_j exp(beta * x_j)` over the last axis.
#[derive(Clone, Debug, PartialEq)]
pub struct Softmax {
    pub beta: f32,
}
