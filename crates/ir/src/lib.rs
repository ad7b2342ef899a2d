//! The tinyq model IR: one graph type for every stage, from import to export.
//!
//! A [`Graph`] holds tensors (static shapes, NHWC activations, constants inline) and a
//! topologically ordered list of [`Node`]s, each carrying one variant of the closed [`Op`] enum in
//! TFLite's operator dialect (conv weights OHWI, depthwise `[1, H, W, C·M]`, fully-connected
//! `[out, in]`). Quantization lives on the tensor ([`QParams`]), never in the dtype.
//!
//! This crate is deliberately not an engine and not a format: it knows shapes and semantics, not
//! how to compute values or how bytes are laid out in a file. Graph changes go through named
//! rewrite [`rules`], each returning a [`Patch`] or nothing.

mod check;
mod dtype;
mod error;
mod graph;
pub mod op;
mod patch;
pub mod rules;
pub mod size;
mod tensor;

pub use dtype::{DType, TensorData, I4_MAX, I4_MIN};
pub use error::IrError;
pub use graph::{Graph, Node, NodeId, TensorId};
pub use op::{FusedActivation, Op, Padding};
pub use patch::Patch;
pub use tensor::{QParams, Tensor};

/// Number of elements of a shape (1 for a scalar). Saturates instead of wrapping, so a shape
/// that escaped [`size::tensor_numel`] can never look small; sizes from files are checked there.
pub fn numel(shape: &[usize]) -> usize {
    size::checked_numel(shape).unwrap_or(usize::MAX)
}
