//! Where the bytes of a `.tflite` file go: what each part of a model costs in flash.

use crate::error::{malformed, TfliteError};
use crate::generated as tfl;
use crate::read::FILE_IDENTIFIER;
use planus::ReadAsRoot;
use serde::Serialize;

/// The bytes of a `.tflite` file by what they hold. The parts add up to `total`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FlashBreakdown {
    pub total: u64,
    /// Constant data of 8- and 16-bit integer tensors: quantized weights (and lookup tables).
    pub weights: u64,
    /// Constant data of 32- and 64-bit integer tensors: biases, and the shape or padding operands
    /// of RESHAPE and PAD.
    pub biases: u64,
    /// Constant data of float tensors (float layers, FP16 weights).
    pub float_constants: u64,
    /// Quantization parameters: 4 bytes per scale and 8 per zero point (TFLite stores zero
    /// points as int64), with their vectors' length fields. Per-channel tensors carry one of each
    /// per channel.
    pub quantization: u64,
    /// Tensor, subgraph and metadata names.
    pub names: u64,
    /// Everything else: the flatbuffer tables and vtables, shapes, operators and their options,
    /// the buffer list, metadata values and alignment padding.
    pub structure: u64,
}

/// Splits a `.tflite` file's bytes into weights, biases, float constants, quantization
/// parameters, names and structure. A buffer read by several tensors counts once, under the
/// type of the first tensor that reads it; data stored after the flatbuffer (buffers with an
/// offset and size, as in models over 2 GiB) counts like data inside it.
pub fn flash_breakdown(bytes: &[u8]) -> Result<FlashBreakdown, TfliteError> {
    if bytes.len() < 8 || &bytes[4..8] != FILE_IDENTIFIER {
        return Err(TfliteError::NotTflite("no \"TFL3\" identifier at bytes 4..8".into()));
    }
    let model = tfl::ModelRef::read_as_root(bytes).map_err(malformed("the model table"))?;
    let mut buffer_sizes = Vec::new();
    for (i, b) in model.buffers().map_err(malformed("Model.buffers"))?.into_iter().flatten().enumerate() {
        let what = || format!("buffer {i}");
        let b = b.map_err(malformed(what()))?;
        let inline = b.data().map_err(malformed(what()))?.map_or(0, |d| d.len() as u64);
        buffer_sizes.push(inline.max(b.size().map_err(malformed(what()))?));
    }
    let mut counted = vec![false; buffer_sizes.len()];
    let mut out = FlashBreakdown { total: bytes.len() as u64, ..Default::default() };
    // A string or vector costs its 4-byte length field besides its elements.
    let vector = |elements: u64| 4 + elements;
    for (s, sg) in model.subgraphs().map_err(malformed("Model.subgraphs"))?.into_iter().flatten().enumerate() {
        let sg = sg.map_err(malformed(format!("subgraph {s}")))?;
        out.names +=
            sg.name().map_err(malformed(format!("subgraph {s} name")))?.map_or(0, |n| vector(n.len() as u64 + 1));
        for (i, t) in
            sg.tensors().map_err(malformed(format!("subgraph {s} tensors")))?.into_iter().flatten().enumerate()
        {
            let what = || format!("tensor {i} of subgraph {s}");
            let t = t.map_err(malformed(what()))?;
            out.names += t.name().map_err(malformed(what()))?.map_or(0, |n| vector(n.len() as u64 + 1));
            if let Some(q) = t.quantization().map_err(malformed(what()))? {
                let scales = q.scale().map_err(malformed(what()))?.map_or(0, |v| vector(4 * v.len() as u64));
                let zero_points = q.zero_point().map_err(malformed(what()))?.map_or(0, |v| vector(8 * v.len() as u64));
                out.quantization += scales + zero_points;
            }
            let buffer = t.buffer().map_err(malformed(what()))? as usize;
            let Some(&size) = buffer_sizes.get(buffer) else { continue };
            if size == 0 || std::mem::replace(&mut counted[buffer], true) {
                continue;
            }
            use tfl::TensorType as T;
            match t.type_().map_err(malformed(what()))? {
                T::Int8 | T::Uint8 | T::Int16 | T::Uint16 | T::Int4 => out.weights += size,
                T::Int32 | T::Uint32 | T::Int64 | T::Uint64 => out.biases += size,
                T::Float32 | T::Float16 | T::Float64 => out.float_constants += size,
                _ => {}
            }
        }
    }
    for (i, m) in model.metadata().map_err(malformed("Model.metadata"))?.into_iter().flatten().enumerate() {
        let m = m.map_err(malformed(format!("metadata {i}")))?;
        out.names += m.name().map_err(malformed(format!("metadata {i}")))?.map_or(0, |n| vector(n.len() as u64 + 1));
    }
    let parts = out.weights + out.biases + out.float_constants + out.quantization + out.names;
    out.structure = out.total.checked_sub(parts).ok_or_else(|| {
        TfliteError::NotTflite(format!("its parts add up to {parts} bytes, more than the {} of the file", out.total))
    })?;
    Ok(out)
}
