//! `.tflite` bytes → IR graph.

use crate::codes::{self, op_name};
use crate::error::{malformed, TfliteError};
use crate::fold;
use crate::generated as tfl;
use crate::ops::import_op;
use planus::ReadAsRoot;
use tinyq_ir::{DType, Graph, Node, QParams, Tensor, TensorData};

/// The schema version tinyq reads and writes.
pub const SCHEMA_VERSION: u32 = 3;
pub const FILE_IDENTIFIER: &[u8; 4] = b"TFL3";

/// Reads subgraph 0 of a TFLite model.
///
/// FP16 constants feeding DEQUANTIZE become f32 constants; integer tensors keep their
/// quantization and QUANTIZE/DEQUANTIZE stay ops. Dynamic-range ("hybrid") layers, int8 weights
/// under float activations, become float layers with the dequantized weights. Shape subgraphs
/// (SHAPE, STRIDED_SLICE, PACK, GATHER, CONCATENATION on known integers) fold to constants, see
/// `fold.rs`. Each node is named after its first output tensor, since TFLite
/// operators have no names. Errors name the operator index and op, or the tensor.
pub fn read_tflite(bytes: &[u8]) -> Result<Graph, TfliteError> {
    read_tflite_with(bytes, &[])
}

/// [`read_tflite`] with graph inputs' dynamic axes (`-1` in `shape_signature`) fixed by
/// `input_shapes` (name → shape, `--input-shape`); the shapes of every later tensor are inferred
/// again from them. A dynamic axis other than the batch left unfixed is an error naming the
/// input and the axis; a dynamic batch is 1.
pub fn read_tflite_with(bytes: &[u8], input_shapes: &[(String, Vec<usize>)]) -> Result<Graph, TfliteError> {
    if bytes.len() < 8 {
        return Err(TfliteError::NotTflite(format!("{} bytes is too short for a flatbuffer", bytes.len())));
    }
    if &bytes[4..8] != FILE_IDENTIFIER {
        return Err(TfliteError::NotTflite(format!(
            "bytes 4..8 are {:?}, not the identifier \"TFL3\"",
            String::from_utf8_lossy(&bytes[4..8])
        )));
    }
    let model = tfl::ModelRef::read_as_root(bytes).map_err(malformed("the model table"))?;
    crate::verify::verify(bytes, model)?;
    let version = model.version().map_err(malformed("Model.version"))?;
    if version != SCHEMA_VERSION {
        return Err(TfliteError::NotTflite(format!("schema version {version}, expected {SCHEMA_VERSION}")));
    }
    let buffers = model.buffers().map_err(malformed("Model.buffers"))?;
    let subgraph = model
        .subgraphs()
        .map_err(malformed("Model.subgraphs"))?
        .and_then(|s| s.get(0))
        .ok_or_else(|| TfliteError::NotTflite("the model has no subgraph".into()))?
        .map_err(malformed("subgraph 0"))?;

    let mut opcodes = Vec::new();
    if let Some(list) = model.operator_codes().map_err(malformed("Model.operator_codes"))? {
        for (i, oc) in list.iter().enumerate() {
            let what = format!("operator code {i}");
            let oc = oc.map_err(malformed(&what))?;
            let code = codes::builtin_code(
                oc.builtin_code().map_err(malformed(&what))?,
                oc.deprecated_builtin_code().map_err(malformed(&what))?,
            );
            let custom = oc.custom_code().map_err(malformed(&what))?.map(str::to_string);
            opcodes.push((code, custom));
        }
    }

    let mut tensors = Vec::new();
    let mut signatures = Vec::new();
    if let Some(list) = subgraph.tensors().map_err(malformed("SubGraph.tensors"))? {
        for (i, t) in list.iter().enumerate() {
            let t = t.map_err(malformed(format!("tensor {i}")))?;
            tensors.push(read_tensor(i, t, buffers)?);
            let sig = t.shape_signature().map_err(malformed(format!("tensor {i}")))?;
            signatures.push(sig.map(|v| v.iter().collect::<Vec<i32>>()));
        }
    }
    let n_tensors = tensors.len();
    let index = |v: i32, what: &str| -> Result<usize, String> {
        usize::try_from(v)
            .ok()
            .filter(|&i| i < n_tensors)
            .ok_or(format!("{what} tensor index {v} is out of range ({n_tensors} tensors)"))
    };
    let io = |v: Option<planus::Vector<'_, i32>>, what: &str| -> Result<Vec<usize>, TfliteError> {
        v.map(|v| v.iter().collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .map(|i| index(i, what).map_err(TfliteError::NotTflite))
            .collect()
    };
    let graph_inputs = io(subgraph.inputs().map_err(malformed("SubGraph.inputs"))?, "graph input")?;
    let mut reshaped = fix_input_shapes(&mut tensors, &signatures, &graph_inputs, input_shapes)?;

    let mut g = Graph::default();
    let ops = subgraph.operators().map_err(malformed("SubGraph.operators"))?;
    let mut folded = Vec::new();
    for (k, op) in ops.into_iter().flatten().enumerate() {
        let what = format!("operator {k}");
        let op = op.map_err(malformed(&what))?;
        let opcode = op.opcode_index().map_err(malformed(&what))? as usize;
        let (code, custom) = opcodes.get(opcode).cloned().ok_or_else(|| TfliteError::Operator {
            index: k,
            op: "?".into(),
            msg: format!("opcode index {opcode} is out of range ({} operator codes)", opcodes.len()),
        })?;
        let name = match (code, &custom) {
            (codes::CUSTOM, Some(c)) => format!("CUSTOM `{c}`"),
            _ => op_name(code).to_string(),
        };
        let op_err = |msg: String| TfliteError::Operator { index: k, op: name.clone(), msg };
        let list = |v: Option<planus::Vector<'_, i32>>| v.map(|v| v.iter().collect::<Vec<i32>>()).unwrap_or_default();
        let ins = list(op.inputs().map_err(malformed(&what))?);
        let outs = list(op.outputs().map_err(malformed(&what))?);
        let ins = ins
            .iter()
            .map(|&i| if i == -1 { Ok(None) } else { index(i, "input").map(Some) })
            .collect::<Result<Vec<_>, _>>()
            .map_err(op_err)?;
        let outs = outs.iter().map(|&o| index(o, "output")).collect::<Result<Vec<_>, _>>().map_err(op_err)?;

        if code == codes::DEQUANTIZE {
            if let (Some(Some(i)), Some(&o)) = (ins.first(), outs.first()) {
                if let Some(TensorData::F16(h)) = &tensors[*i].data {
                    if tensors[o].dtype != DType::F32 || tensors[o].numel() != h.len() {
                        return Err(op_err(format!(
                            "dequantizes float16 `{}` into a non-matching tensor",
                            tensors[*i].name
                        )));
                    }
                    tensors[o].data = Some(TensorData::F32(h.iter().map(|v| v.to_f32()).collect()));
                    folded.push(o);
                    continue;
                }
            }
        }

        let opts = op.builtin_options().map_err(|e| op_err(format!("unreadable builtin options: {e}")))?;
        let in_t: Vec<Option<&Tensor>> = ins.iter().map(|i| i.map(|i| &tensors[i])).collect();
        if fold::is_shape_op(code) && outs.len() == 1 {
            if let Some(data) = fold::fold(code, opts, &in_t, &tensors[outs[0]]).map_err(op_err)? {
                tensors[outs[0]].data = Some(data);
                folded.push(outs[0]);
                continue;
            }
        }
        let out_t: Vec<&Tensor> = outs.iter().map(|&o| &tensors[o]).collect();
        let (ir_op, keep) = import_op(code, opts, &in_t, &out_t)
            .map_err(op_err)?
            .ok_or_else(|| TfliteError::UnsupportedOp { index: k, op: name.clone(), code })?;
        let new_shape = match outs.first() {
            Some(&o) if ins.iter().flatten().any(|i| reshaped.contains(i)) => {
                Some((o, infer_again(&ir_op, &in_t, &tensors[o], signatures[o].as_deref()).map_err(op_err)?))
            }
            _ => None,
        };
        if let Some((o, shape)) = new_shape {
            tensors[o].shape = shape;
            reshaped.insert(o);
        }
        if is_hybrid(&ins.iter().map(|i| i.map(|i| &tensors[i])).collect::<Vec<_>>(), &ir_op) {
            // Dynamic-range ("hybrid") layer: float activations, int8 weights. Its float model
            // is the dequantized weights.
            let w = ins[1].expect("is_hybrid saw the weights");
            tensors[w] = dequantize_weights(&tensors[w]).map_err(|msg| TfliteError::Tensor {
                index: w,
                name: tensors[w].name.clone(),
                msg,
            })?;
        }
        let inputs = ins[..keep.min(ins.len())]
            .iter()
            .map(|i| i.ok_or_else(|| op_err("a required input is absent (-1)".into())))
            .collect::<Result<Vec<_>, _>>()?;
        let node_name = outs.first().map(|&o| tensors[o].name.clone()).unwrap_or_else(|| format!("op{k}"));
        g.nodes.push(Node { name: node_name, op: ir_op, inputs, outputs: outs });
    }
    for o in folded {
        if g.producer(o).is_some() {
            return Err(TfliteError::Tensor {
                index: o,
                name: tensors[o].name.clone(),
                msg: "is written twice".into(),
            });
        }
    }

    g.inputs = graph_inputs;
    g.outputs = io(subgraph.outputs().map_err(malformed("SubGraph.outputs"))?, "graph output")?;
    g.tensors = tensors;
    g.compact();
    g.validate().map_err(TfliteError::Graph)?;
    Ok(g)
}

/// An int8 weight tensor as float32: `(q − zero_point[c]) · scale[c]` in float32, `c` along the
/// quantized dimension (one scale for per-tensor weights).
fn dequantize_weights(t: &Tensor) -> Result<Tensor, String> {
    let (Some(TensorData::I8(q)), Some(p)) = (&t.data, &t.qparams) else {
        return Err("int8 weights of a float layer need constant data and quantization parameters".into());
    };
    let inner: usize = match p.axis {
        Some(a) if a < t.shape.len() && t.shape[a] == p.scale.len() => t.shape[a + 1..].iter().product(),
        None if p.scale.len() == 1 => q.len().max(1),
        _ => return Err(format!("{} scales do not fit shape {:?}", p.scale.len(), t.shape)),
    };
    let channels = p.scale.len();
    let data = q
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let c = (i / inner) % channels;
            (v as i32 - p.zero_point[c]) as f32 * p.scale[c]
        })
        .collect();
    Ok(Tensor { dtype: DType::F32, data: Some(TensorData::F32(data)), qparams: None, ..t.clone() })
}

fn is_hybrid(ins: &[Option<&Tensor>], op: &tinyq_ir::Op) -> bool {
    let weights_op = op.has_weights();
    let float_in = ins.first().copied().flatten().is_some_and(|t| t.dtype == DType::F32);
    let int_w = ins.get(1).copied().flatten().is_some_and(|t| t.dtype == DType::I8);
    weights_op && float_in && int_w
}

fn read_tensor(
    index: usize,
    t: tfl::TensorRef<'_>,
    buffers: Option<planus::Vector<'_, planus::Result<tfl::BufferRef<'_>>>>,
) -> Result<Tensor, TfliteError> {
    let what = format!("tensor {index}");
    let name = t.name().map_err(malformed(&what))?.map(str::to_string).unwrap_or_else(|| format!("tensor{index}"));
    let err = |msg: String| TfliteError::Tensor { index, name: name.clone(), msg };
    let shape = t
        .shape()
        .map_err(malformed(&what))?
        .map(|s| s.iter().collect::<Vec<i32>>())
        .unwrap_or_default()
        .into_iter()
        .map(|d| {
            usize::try_from(d).ok().filter(|&d| d > 0).ok_or_else(|| err(format!("dimension {d} is not a static size")))
        })
        .collect::<Result<Vec<usize>, _>>()?;
    let ty = t.type_().map_err(malformed(&what))?;
    let dtype = match ty {
        tfl::TensorType::Float32 => DType::F32,
        tfl::TensorType::Float16 => DType::F16,
        tfl::TensorType::Int4 => DType::I4,
        tfl::TensorType::Int8 => DType::I8,
        tfl::TensorType::Uint8 => DType::U8,
        tfl::TensorType::Int16 => DType::I16,
        tfl::TensorType::Int32 => DType::I32,
        tfl::TensorType::Int64 => DType::I64,
        other => return Err(err(format!("element type {other:?} is not supported"))),
    };
    tinyq_ir::size::tensor_numel(&shape, dtype.size_bytes()).map_err(&err)?;
    if t.sparsity().map_err(malformed(&what))?.is_some() {
        return Err(err("sparse tensors are not supported".into()));
    }

    let b = t.buffer().map_err(malformed(&what))? as usize;
    let n_buffers = buffers.map(|v| v.len()).unwrap_or(0);
    if b != 0 && b >= n_buffers {
        return Err(err(format!("buffer index {b} is out of range ({n_buffers} buffers)")));
    }
    let buffer = buffers.and_then(|v| v.get(b)).transpose().map_err(malformed(format!("buffer {b}")))?;
    let mut bytes: &[u8] = &[];
    if let Some(buf) = buffer {
        if buf.offset().map_err(malformed(format!("buffer {b}")))? > 1 {
            return Err(err(format!("buffer {b} lives outside the flatbuffer (offset/size), which is not supported")));
        }
        bytes = buf.data().map_err(malformed(format!("buffer {b}")))?.unwrap_or_default();
    }
    let data = if bytes.is_empty() {
        None
    } else {
        let want = tinyq_ir::size::checked_numel(&shape).map(|n| dtype.packed_bytes(n));
        if want != Some(bytes.len()) {
            return Err(err(format!(
                "shape {shape:?} of {} needs {} bytes, buffer {b} holds {}",
                dtype.name(),
                want.map_or("too many".into(), |w| w.to_string()),
                bytes.len()
            )));
        }
        Some(decode(dtype, bytes, tinyq_ir::size::checked_numel(&shape).unwrap_or(0)))
    };

    let qparams = match t.quantization().map_err(malformed(&what))? {
        None => None,
        Some(q) => {
            let scale: Vec<f32> = q.scale().map_err(malformed(&what))?.map(|v| v.iter().collect()).unwrap_or_default();
            let zp: Vec<i64> =
                q.zero_point().map_err(malformed(&what))?.map(|v| v.iter().collect()).unwrap_or_default();
            let dim = q.quantized_dimension().map_err(malformed(&what))?;
            if scale.is_empty() {
                None
            } else {
                let zero_point =
                    if zp.is_empty() { vec![0; scale.len()] } else { zp.iter().map(|&z| z as i32).collect() };
                if zero_point.len() != scale.len() || zp.iter().any(|&z| i32::try_from(z).is_err()) {
                    return Err(err(format!("{} scales but zero points {zp:?}", scale.len())));
                }
                let axis = if scale.len() > 1 || dim != 0 {
                    let a = usize::try_from(dim).ok().filter(|&a| a < shape.len() && shape[a] == scale.len());
                    Some(a.ok_or_else(|| {
                        err(format!("{} scales do not fit quantized_dimension {dim} of shape {shape:?}", scale.len()))
                    })?)
                } else {
                    None
                };
                Some(QParams { scale, zero_point, axis })
            }
        }
    };
    Ok(Tensor { name, shape, dtype, qparams, data })
}

/// Little-endian bytes (length already checked) → `numel` values.
fn decode(dtype: DType, b: &[u8], numel: usize) -> TensorData {
    fn le<const N: usize, T>(b: &[u8], f: fn([u8; N]) -> T) -> Vec<T> {
        b.chunks_exact(N).map(|c| f(c.try_into().unwrap_or([0; N]))).collect()
    }
    match dtype {
        DType::F32 => TensorData::F32(le(b, f32::from_le_bytes)),
        DType::F16 => TensorData::F16(le(b, |c| half::f16::from_bits(u16::from_le_bytes(c)))),
        DType::I4 => TensorData::I8(crate::int4::unpack(b, numel)),
        DType::I8 => TensorData::I8(b.iter().map(|&v| v as i8).collect()),
        DType::U8 => TensorData::U8(b.to_vec()),
        DType::I16 => TensorData::I16(le(b, i16::from_le_bytes)),
        DType::I32 => TensorData::I32(le(b, i32::from_le_bytes)),
        DType::I64 => TensorData::I64(le(b, i64::from_le_bytes)),
    }
}

/// Applies `--input-shape` to the graph inputs and checks that no dynamic axis but the batch is
/// left open. Returns the tensors whose shape changed.
fn fix_input_shapes(
    tensors: &mut [Tensor],
    signatures: &[Option<Vec<i32>>],
    inputs: &[usize],
    fixed: &[(String, Vec<usize>)],
) -> Result<std::collections::HashSet<usize>, TfliteError> {
    let mut changed = std::collections::HashSet::new();
    for (name, _) in fixed {
        if !inputs.iter().any(|&i| &tensors[i].name == name) {
            let names: Vec<&str> = inputs.iter().map(|&i| tensors[i].name.as_str()).collect();
            return Err(TfliteError::NotTflite(format!(
                "--input-shape names `{name}`, which is not a graph input (inputs: {})",
                names.join(", ")
            )));
        }
    }
    for &i in inputs {
        let t = &tensors[i];
        let err = |msg: String| TfliteError::Tensor { index: i, name: t.name.clone(), msg };
        let sig: Vec<i64> = match &signatures[i] {
            Some(s) if s.len() == t.shape.len() => s.iter().map(|&d| d as i64).collect(),
            _ => t.shape.iter().map(|&d| d as i64).collect(),
        };
        let shape = match fixed.iter().find(|(n, _)| n == &t.name) {
            Some((_, f)) => {
                if f.len() != sig.len() {
                    return Err(err(format!(
                        "--input-shape gives {} dimensions, the input has {}",
                        f.len(),
                        sig.len()
                    )));
                }
                for (a, (&d, &s)) in f.iter().zip(&sig).enumerate() {
                    if d == 0 || (s > 0 && s as usize != d) {
                        return Err(err(format!("--input-shape gives dimension {a} as {d}, the model has {s}")));
                    }
                }
                f.clone()
            }
            None => {
                if let Some(a) = sig.iter().skip(1).position(|&d| d < 0) {
                    return Err(err(format!(
                        "dimension {} is dynamic (-1 in shape_signature); fix it with --input-shape {}=D0,D1,…",
                        a + 1,
                        t.name
                    )));
                }
                continue;
            }
        };
        if shape != t.shape {
            tensors[i].shape = shape;
            changed.insert(i);
        }
    }
    Ok(changed)
}

/// The output shape of an op whose input shapes changed: the op's shape rule, or for RESHAPE its
/// (folded) shape input, else the output's `shape_signature` with its one `-1` resolved.
fn infer_again(
    op: &tinyq_ir::Op,
    ins: &[Option<&Tensor>],
    out: &Tensor,
    sig: Option<&[i32]>,
) -> Result<Vec<usize>, String> {
    let x = ins.first().copied().flatten().ok_or("input 0 is missing")?;
    if *op != tinyq_ir::Op::Reshape {
        let shapes: Vec<&[usize]> = ins.iter().flatten().map(|t| t.shape.as_slice()).collect();
        return Ok(op.infer_shapes(&shapes)?.remove(0));
    }
    let target: Vec<i64> = match (ins.get(1).copied().flatten().and_then(|t| t.data.as_ref()), sig) {
        (Some(d), _) => d.to_i64(),
        (None, Some(s)) if s.len() == out.shape.len() => s.iter().map(|&d| d as i64).collect(),
        _ => out.shape.iter().map(|&d| d as i64).collect(),
    };
    let known: i64 = target.iter().filter(|&&d| d > 0).product();
    let total = x.numel() as i64;
    let open = target.iter().filter(|&&d| d < 0).count();
    let fits = (open == 0 && known == total) || (open == 1 && known > 0 && total % known == 0);
    if !fits {
        return Err(format!("cannot reshape {:?} to {target:?} after --input-shape", x.shape));
    }
    Ok(target.iter().map(|&d| if d < 0 { (total / known) as usize } else { d as usize }).collect())
}
