//! The parts of a TFLite flatbuffer the arena model needs (tensor shapes, types, buffers and
//! quantization sizes, operator wiring, operator codes, metadata names), read through the schema
//! types of `tinyq-tflite`. The IR is not enough: it drops things the allocator depends on (every
//! tensor of every subgraph, unused tensors, `is_variable`, the metadata entries).

use tinyq_tflite::{schema, ReadAsRoot};

use crate::ArenaError;

fn bad(msg: impl Into<String>) -> ArenaError {
    ArenaError::Malformed(msg.into())
}

fn at(what: &'static str) -> impl Fn(planus::Error) -> ArenaError {
    move |e| bad(format!("{what}: {e}"))
}

fn ints(v: Option<planus::Vector<'_, i32>>) -> Vec<i32> {
    v.map(|v| v.iter().collect()).unwrap_or_default()
}

/// One tensor of a subgraph, as the allocator sees it.
#[derive(Clone, Debug)]
pub struct FbTensor {
    pub name: String,
    pub shape: Vec<i32>,
    /// `tflite::TensorType` code.
    pub ttype: u8,
    /// The tensor's buffer holds data (a constant living in the flatbuffer).
    pub has_data: bool,
    pub is_variable: bool,
    /// `Some(channels)` when the tensor has scale and zero_point vectors
    /// (TFLM then builds a `TfLiteAffineQuantization` for it).
    pub quant_channels: Option<usize>,
}

#[derive(Clone, Debug)]
pub struct FbOp {
    pub builtin_code: i32,
    pub inputs: Vec<i32>,
    pub outputs: Vec<i32>,
    /// Stride, dilation and padding of CONV_2D / DEPTHWISE_CONV_2D (CMSIS-NN sizes its
    /// scratch buffers from them).
    pub conv: Option<ConvGeometry>,
}

/// The `Conv2DOptions` / `DepthwiseConv2DOptions` fields kernels size buffers from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeometry {
    pub stride_h: i32,
    pub stride_w: i32,
    pub dilation_h: i32,
    pub dilation_w: i32,
    /// `Padding.SAME` (else VALID).
    pub same: bool,
}

fn conv_geometry(op: &schema::OperatorRef<'_>) -> Result<Option<ConvGeometry>, ArenaError> {
    use schema::BuiltinOptionsRef as O;
    let g = match op.builtin_options().map_err(at("operator options"))? {
        Some(O::Conv2DOptions(o)) => ConvGeometry {
            stride_h: o.stride_h().map_err(at("Conv2DOptions"))?,
            stride_w: o.stride_w().map_err(at("Conv2DOptions"))?,
            dilation_h: o.dilation_h_factor().map_err(at("Conv2DOptions"))?,
            dilation_w: o.dilation_w_factor().map_err(at("Conv2DOptions"))?,
            same: o.padding().map_err(at("Conv2DOptions"))? == schema::Padding::Same,
        },
        Some(O::DepthwiseConv2DOptions(o)) => ConvGeometry {
            stride_h: o.stride_h().map_err(at("DepthwiseConv2DOptions"))?,
            stride_w: o.stride_w().map_err(at("DepthwiseConv2DOptions"))?,
            dilation_h: o.dilation_h_factor().map_err(at("DepthwiseConv2DOptions"))?,
            dilation_w: o.dilation_w_factor().map_err(at("DepthwiseConv2DOptions"))?,
            same: o.padding().map_err(at("DepthwiseConv2DOptions"))? == schema::Padding::Same,
        },
        _ => return Ok(None),
    };
    Ok(Some(g))
}

#[derive(Clone, Debug)]
pub struct FbSubgraph {
    pub tensors: Vec<FbTensor>,
    pub inputs: Vec<i32>,
    pub outputs: Vec<i32>,
    pub ops: Vec<FbOp>,
}

#[derive(Clone, Debug)]
pub struct FbModel {
    pub subgraphs: Vec<FbSubgraph>,
    /// Names of `Model.metadata` entries (e.g. "OfflineMemoryAllocation").
    pub metadata_names: Vec<String>,
}

/// Parses the subset of the TFLite schema the arena model needs.
pub fn parse(bytes: &[u8]) -> Result<FbModel, ArenaError> {
    if bytes.len() < 8 || &bytes[4..8] != b"TFL3" {
        return Err(ArenaError::NotTflite);
    }
    let root = schema::ModelRef::read_as_root(bytes).map_err(at("the model table"))?;
    let mut codes = Vec::new();
    for oc in root.operator_codes().map_err(at("Model.operator_codes"))?.into_iter().flatten() {
        let oc = oc.map_err(at("operator code"))?;
        let dep = oc.deprecated_builtin_code().map_err(at("operator code"))? as i32;
        codes.push(dep.max(oc.builtin_code().map_err(at("operator code"))?));
    }
    let mut buffer_has_data = Vec::new();
    for b in root.buffers().map_err(at("Model.buffers"))?.into_iter().flatten() {
        let data = b.map_err(at("buffer"))?.data().map_err(at("buffer data"))?;
        buffer_has_data.push(data.is_some_and(|d| !d.is_empty()));
    }
    let mut metadata_names = Vec::new();
    for m in root.metadata().map_err(at("Model.metadata"))?.into_iter().flatten() {
        metadata_names
            .push(m.map_err(at("metadata"))?.name().map_err(at("metadata name"))?.unwrap_or_default().to_string());
    }
    let mut subgraphs = Vec::new();
    for sg in root.subgraphs().map_err(at("Model.subgraphs"))?.into_iter().flatten() {
        let sg = sg.map_err(at("subgraph"))?;
        let mut tensors = Vec::new();
        for t in sg.tensors().map_err(at("subgraph tensors"))?.into_iter().flatten() {
            let t = t.map_err(at("tensor"))?;
            let quant_channels = match t.quantization().map_err(at("tensor quantization"))? {
                Some(q) => {
                    let len = |v: Option<usize>| v.unwrap_or(0);
                    let s = len(q.scale().map_err(at("scale"))?.map(|v| v.len()));
                    let z = len(q.zero_point().map_err(at("zero_point"))?.map(|v| v.len()));
                    (s > 0 && z > 0).then_some(s)
                }
                None => None,
            };
            let buffer = t.buffer().map_err(at("tensor buffer"))? as usize;
            tensors.push(FbTensor {
                name: t.name().map_err(at("tensor name"))?.unwrap_or_default().to_string(),
                shape: ints(t.shape().map_err(at("tensor shape"))?),
                ttype: t.type_().map_err(at("tensor type"))? as u8,
                has_data: buffer_has_data.get(buffer).copied().unwrap_or(false),
                is_variable: t.is_variable().map_err(at("tensor is_variable"))?,
                quant_channels,
            });
        }
        let mut ops = Vec::new();
        for (k, op) in sg.operators().map_err(at("subgraph operators"))?.into_iter().flatten().enumerate() {
            let op = op.map_err(at("operator"))?;
            let idx = op.opcode_index().map_err(at("opcode index"))? as usize;
            let builtin_code =
                *codes.get(idx).ok_or_else(|| bad(format!("operator {k}: opcode index {idx} out of range")))?;
            ops.push(FbOp {
                builtin_code,
                inputs: ints(op.inputs().map_err(at("operator inputs"))?),
                outputs: ints(op.outputs().map_err(at("operator outputs"))?),
                conv: conv_geometry(&op)?,
            });
        }
        let n = tensors.len() as i32;
        let check = |v: &[i32], what: &str| -> Result<(), ArenaError> {
            match v.iter().find(|&&i| i >= n || i < -1) {
                Some(i) => Err(bad(format!("{what}: tensor index {i} out of range ({n} tensors)"))),
                None => Ok(()),
            }
        };
        let (inputs, outputs) =
            (ints(sg.inputs().map_err(at("subgraph inputs"))?), ints(sg.outputs().map_err(at("subgraph outputs"))?));
        check(&inputs, "subgraph inputs")?;
        check(&outputs, "subgraph outputs")?;
        for (k, op) in ops.iter().enumerate() {
            check(&op.inputs, &format!("operator {k} inputs"))?;
            check(&op.outputs, &format!("operator {k} outputs"))?;
        }
        subgraphs.push(FbSubgraph { tensors, inputs, outputs, ops });
    }
    if subgraphs.is_empty() {
        return Err(bad("the model has no subgraph"));
    }
    Ok(FbModel { subgraphs, metadata_names })
}
