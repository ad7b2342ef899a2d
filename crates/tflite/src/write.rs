//! IR graph → `.tflite` bytes that TFLM and LiteRT both load.

use crate::error::TfliteError;
use crate::generated as tfl;
use crate::ops::{export_op, min_runtime_version, Input};
use crate::read::{FILE_IDENTIFIER, SCHEMA_VERSION};
use std::path::Path;
use tinyq_ir::op::Pad;
use tinyq_ir::{Graph, Node, Op, Padding, Tensor, TensorData};

/// Flatbuffers address with 32-bit offsets; the C++ runtime caps a model below 2 GiB.
pub const MAX_MODEL_BYTES: usize = i32::MAX as usize;
/// Alignment of every constant buffer's data in the file, as the TFLite converter writes it.
pub const BUFFER_ALIGNMENT: usize = 16;
const MIN_RUNTIME_VERSION: &str = "min_runtime_version";

/// Writes `graph` as a TFLite model: subgraph 0, schema version 3, identifier "TFL3", buffer 0
/// empty, constants inside the flatbuffer with 16-byte aligned data, both operator code fields,
/// the op versions LiteRT checks, a `min_runtime_version` metadata entry.
///
/// Explicit padding becomes a PAD (zero point for quantized tensors; the lowest value for max
/// pooling) before a VALID op, unless it equals SAME or VALID; explicit padding on an average
/// pool is refused (TFLite's divisor would count the padding). A conv or depthwise conv without
/// bias gets a zero bias (LiteRT needs one). Node names are not stored.
/// The same graph always gives the same bytes.
pub fn write_tflite(graph: &Graph) -> Result<Vec<u8>, TfliteError> {
    check_ids(graph)?;
    graph.validate().map_err(TfliteError::Graph)?;
    let g = lower_explicit_padding(graph)?;

    let mut tensors: Vec<Tensor> = g.tensors.clone();
    let mut operators = Vec::new();
    let mut opcodes: Vec<(i32, i32)> = Vec::new();
    for n in &g.nodes {
        let e = export_op(&g, n).map_err(|msg| TfliteError::Export { node: n.name.clone(), op: n.op.name(), msg })?;
        let inputs = e
            .inputs
            .into_iter()
            .map(|i| match i {
                Input::Tensor(t) => t as i32,
                Input::Const(t) => {
                    tensors.push(t);
                    tensors.len() as i32 - 1
                }
            })
            .collect();
        let opcode_index = match opcodes.iter().position(|&c| c == (e.code, e.version)) {
            Some(i) => i,
            None => {
                opcodes.push((e.code, e.version));
                opcodes.len() - 1
            }
        };
        operators.push(tfl::Operator {
            opcode_index: opcode_index as u32,
            inputs: Some(inputs),
            outputs: Some(n.outputs.iter().map(|&o| o as i32).collect()),
            builtin_options: e.options,
            ..Default::default()
        });
    }

    let mut buffers: Vec<Vec<u8>> = vec![Vec::new()];
    let mut tfl_tensors = Vec::with_capacity(tensors.len());
    for (i, t) in tensors.iter().enumerate() {
        let buffer = match &t.data {
            Some(d) => {
                if d.len() != t.numel() || d.dtype() != t.dtype.storage() {
                    let msg = format!(
                        "holds {} {} values for shape {:?} of {}",
                        d.len(),
                        d.dtype().name(),
                        t.shape,
                        t.dtype.name()
                    );
                    return Err(TfliteError::Tensor { index: i, name: t.name.clone(), msg });
                }
                buffers.push(encode(t.dtype, d).map_err(|msg| TfliteError::Tensor {
                    index: i,
                    name: t.name.clone(),
                    msg,
                })?);
                buffers.len() as u32 - 1
            }
            None => 0,
        };
        tfl_tensors.push(tensor_out(i, t, buffer)?);
    }
    let total: usize = buffers.iter().map(|b| b.len() + BUFFER_ALIGNMENT).sum();
    if total > MAX_MODEL_BYTES {
        return Err(TfliteError::ExportGraph(format!("{total} bytes of constants exceed the 2 GiB flatbuffer limit")));
    }

    let runtime = opcodes
        .iter()
        .map(|&(c, v)| min_runtime_version(c, v))
        .max_by_key(|s| s.split('.').map(|p| p.parse::<u32>().unwrap_or(0)).collect::<Vec<_>>())
        .unwrap_or("1.5.0");
    let mut runtime_bytes = runtime.as_bytes().to_vec();
    runtime_bytes.resize(16, 0);
    buffers.push(runtime_bytes);
    let metadata = vec![tfl::Metadata { name: Some(MIN_RUNTIME_VERSION.into()), buffer: buffers.len() as u32 - 1 }];

    let operator_codes: Vec<tfl::OperatorCode> = opcodes
        .iter()
        .map(|&(code, version)| tfl::OperatorCode {
            deprecated_builtin_code: code.min(crate::codes::PLACEHOLDER_FOR_GREATER_OP_CODES) as i8,
            custom_code: None,
            version,
            builtin_code: code,
        })
        .collect();
    let subgraph = tfl::SubGraph {
        tensors: Some(tfl_tensors),
        inputs: Some(g.inputs.iter().map(|&t| t as i32).collect()),
        outputs: Some(g.outputs.iter().map(|&t| t as i32).collect()),
        operators: Some(operators),
        name: Some("main".into()),
    };

    let mut b = planus::Builder::new();
    let buffer_offsets: Vec<planus::Offset<tfl::Buffer>> = buffers
        .iter()
        .map(|d| {
            let data = if d.is_empty() { None } else { Some(aligned_bytes(&mut b, d)) };
            tfl::Buffer::create(&mut b, data, 0u64, 0u64)
        })
        .collect();
    let buffers_vec = b.create_vector(buffer_offsets.as_slice());
    let model = tfl::Model::create(
        &mut b,
        SCHEMA_VERSION,
        operator_codes,
        vec![subgraph],
        "tinyq",
        buffers_vec,
        None::<Vec<i32>>,
        metadata,
    );
    let mut out = b.finish(model, Some(*FILE_IDENTIFIER)).to_vec();
    fix_header(&mut out);
    if out.len() > MAX_MODEL_BYTES {
        return Err(TfliteError::ExportGraph(format!("the model is {} bytes, over the 2 GiB limit", out.len())));
    }
    Ok(out)
}

/// Writes the model to `path` through a temporary file, so no partial file is left behind.
pub fn write_tflite_file(graph: &Graph, path: impl AsRef<Path>) -> Result<(), TfliteError> {
    let path = path.as_ref();
    let bytes = write_tflite(graph).map_err(|e| e.in_file(path.display().to_string()))?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let io = |source| TfliteError::Io { path: path.to_path_buf(), source };
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(e)
    })
}

/// planus 1.3 writes the file identifier at bytes 0..4 and the root offset at 4..8 (planus
/// PR #377); flatbuffers wants them the other way round. The root offset is relative to its own
/// position, so moving it 4 bytes earlier adds 4.
pub(crate) fn fix_header(out: &mut [u8]) {
    if out.len() >= 8 && &out[0..4] == FILE_IDENTIFIER {
        let root = u32::from_le_bytes([out[4], out[5], out[6], out[7]]) + 4;
        out[0..4].copy_from_slice(&root.to_le_bytes());
        out[4..8].copy_from_slice(FILE_IDENTIFIER);
    }
}

/// A `[ubyte]` vector whose data (not its length prefix) starts at a multiple of 16 in the
/// file, as the schema's `force_align: 16` asks; planus's own vectors are only 4-aligned.
/// planus writes back to front and pads the finished buffer to its largest alignment, so
/// aligning the start of the data write aligns it in the file.
fn aligned_bytes(b: &mut planus::Builder, data: &[u8]) -> planus::Offset<[u8]> {
    let len = (data.len() as u32).to_le_bytes();
    // SAFETY: each closure initialises every byte of the slice it is handed (the slices have
    // exactly `data.len()` and 4 bytes).
    unsafe {
        b.write_with(data.len(), BUFFER_ALIGNMENT - 1, |_, out| {
            for (o, &d) in out.iter_mut().zip(data) {
                o.write(d);
            }
        });
        b.write_with(4, 3, |_, out| {
            for (o, &d) in out.iter_mut().zip(&len) {
                o.write(d);
            }
        });
    }
    b.current_offset()
}

fn check_ids(g: &Graph) -> Result<(), TfliteError> {
    let n = g.tensors.len();
    let bad = |what: String| TfliteError::ExportGraph(format!("{what} refers to a tensor id beyond the {n} tensors"));
    for node in &g.nodes {
        if node.inputs.iter().chain(&node.outputs).any(|&t| t >= n) {
            return Err(bad(format!("node `{}`", node.name)));
        }
    }
    if g.inputs.iter().chain(&g.outputs).any(|&t| t >= n) {
        return Err(bad("a graph input or output".into()));
    }
    if n > i32::MAX as usize / 2 {
        return Err(TfliteError::ExportGraph(format!("{n} tensors are too many for TFLite")));
    }
    Ok(())
}

/// Explicit padding → SAME/VALID when equal, else a PAD node before a VALID op.
fn lower_explicit_padding(graph: &Graph) -> Result<Graph, TfliteError> {
    let mut g = graph.clone();
    let mut nodes = Vec::with_capacity(g.nodes.len());
    for mut n in std::mem::take(&mut g.nodes) {
        let x = g.tensors[n.inputs[0]].clone();
        let w = n.inputs.get(1).and_then(|&w| g.tensors.get(w)).filter(|w| w.shape.len() == 4);
        let kernel = w.map(|w| [w.shape[1], w.shape[2]]).unwrap_or([1, 1]);
        let Some(window) = n.op.window_mut() else {
            nodes.push(n);
            continue;
        };
        let (padding, stride, dilation) = (window.padding, window.stride, window.dilation);
        let k = window.filter.unwrap_or(kernel);
        let pad_value = window.pad_value.unwrap_or(f32::NAN);
        *padding = padding.canonical([x.shape[1], x.shape[2]], k, stride, dilation);
        let Padding::Explicit { top, bottom, left, right } = *padding else {
            nodes.push(n);
            continue;
        };
        if pad_value.is_nan() {
            return Err(TfliteError::Export {
                node: n.name.clone(),
                op: n.op.name(),
                msg: format!(
                    "explicit padding {top}/{bottom}/{left}/{right} is neither SAME nor VALID; TFLite's \
                              average pool cannot exclude a PAD's pixels from its divisor"
                ),
            });
        }
        *padding = Padding::Valid;
        let pads = vec![[0, 0], [top, bottom], [left, right], [0, 0]];
        let shape = vec![x.shape[0], x.shape[1] + top + bottom, x.shape[2] + left + right, x.shape[3]];
        let padded = Tensor { name: format!("{}/pad", n.name), shape, data: None, ..x };
        g.tensors.push(padded);
        let padded = g.tensors.len() - 1;
        nodes.push(Node {
            name: format!("{}/pad", n.name),
            op: Op::Pad(Pad { pads, value: pad_value }),
            inputs: vec![n.inputs[0]],
            outputs: vec![padded],
        });
        n.inputs[0] = padded;
        nodes.push(n);
    }
    g.nodes = nodes;
    Ok(g)
}

fn tensor_out(index: usize, t: &Tensor, buffer: u32) -> Result<tfl::Tensor, TfliteError> {
    let err = |msg: String| TfliteError::Tensor { index, name: t.name.clone(), msg };
    let shape = t
        .shape
        .iter()
        .map(|&d| i32::try_from(d).map_err(|_| err(format!("dimension {d} does not fit int32"))))
        .collect::<Result<Vec<_>, _>>()?;
    let type_ = match t.dtype {
        tinyq_ir::DType::F32 => tfl::TensorType::Float32,
        tinyq_ir::DType::F16 => tfl::TensorType::Float16,
        tinyq_ir::DType::I4 => tfl::TensorType::Int4,
        tinyq_ir::DType::I8 => tfl::TensorType::Int8,
        tinyq_ir::DType::U8 => tfl::TensorType::Uint8,
        tinyq_ir::DType::I16 => tfl::TensorType::Int16,
        tinyq_ir::DType::I32 => tfl::TensorType::Int32,
        tinyq_ir::DType::I64 => tfl::TensorType::Int64,
    };
    let quantization = match &t.qparams {
        None => None,
        Some(q) => {
            if q.scale.is_empty() || q.scale.len() != q.zero_point.len() {
                return Err(err(format!("{} scales and {} zero points", q.scale.len(), q.zero_point.len())));
            }
            match q.axis {
                Some(a) if t.shape.get(a) != Some(&q.scale.len()) => {
                    return Err(err(format!("{} scales along axis {a} of shape {:?}", q.scale.len(), t.shape)));
                }
                None if q.scale.len() != 1 => return Err(err(format!("{} scales but no axis", q.scale.len()))),
                _ => {}
            }
            Some(Box::new(tfl::QuantizationParameters {
                scale: Some(q.scale.clone()),
                zero_point: Some(q.zero_point.iter().map(|&z| z as i64).collect()),
                quantized_dimension: q.axis.unwrap_or(0) as i32,
                ..Default::default()
            }))
        }
    };
    Ok(tfl::Tensor {
        shape: Some(shape),
        type_,
        buffer,
        name: Some(t.name.clone()),
        quantization,
        ..Default::default()
    })
}

/// A constant's bytes as TFLite stores them: little-endian, int4 packed two per byte.
fn encode(dtype: tinyq_ir::DType, d: &TensorData) -> Result<Vec<u8>, String> {
    if let (tinyq_ir::DType::I4, TensorData::I8(v)) = (dtype, d) {
        return crate::int4::pack(v);
    }
    Ok(match d {
        TensorData::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::F16(v) => v.iter().flat_map(|x| x.to_bits().to_le_bytes()).collect(),
        TensorData::I8(v) => v.iter().map(|&x| x as u8).collect(),
        TensorData::U8(v) => v.clone(),
        TensorData::I16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::I32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        TensorData::I64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
    })
}
