//! What the exporter needs to know about a `.tflite` model: the operators it uses and the
//! shape, type and quantization of its inputs and outputs.

use crate::ExportError;

/// Builtin operator code of CUSTOM in the TFLite schema.
pub const CUSTOM_CODE: i32 = tinyq_tflite::codes::CUSTOM;

/// One operator kind the model's operators use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsedOp {
    /// TFLite builtin code: the larger of `builtin_code` and `deprecated_builtin_code`.
    pub code: i32,
    /// Schema name such as `CONV_2D` (`CUSTOM` for custom operators).
    pub name: String,
    /// Name of a custom operator (`custom_code`), when `code` is CUSTOM.
    pub custom: Option<String>,
}

/// Element type and quantization of one model input or output.
#[derive(Debug, Clone, PartialEq)]
pub struct IoTensor {
    pub name: String,
    /// Static shape; a dimension of -1 in the file is kept as -1.
    pub shape: Vec<i32>,
    /// TFLite `TensorType` number from the schema (INT8 = 9, FLOAT32 = 0, ...).
    pub tensor_type: i8,
    pub scales: Vec<f32>,
    pub zero_points: Vec<i64>,
}

impl IoTensor {
    /// Number of elements (dimensions below 1 count as 1).
    pub fn elements(&self) -> u64 {
        self.shape.iter().map(|&d| d.max(1) as u64).product()
    }
}

/// The parts of a model the generated project depends on.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    /// Every entry of `Model.operator_codes`, in file order, as builtin codes.
    pub operator_codes: Vec<i32>,
    /// Distinct operator kinds referenced by the operators of all subgraphs, in order of first
    /// appearance in the operator-code table. Two table entries for the same builtin (different
    /// versions) count once, as TFLM registers one kernel per builtin.
    pub used_ops: Vec<UsedOp>,
    /// Inputs and outputs of subgraph 0.
    pub inputs: Vec<IoTensor>,
    pub outputs: Vec<IoTensor>,
}

/// Reads the operator codes and the input/output tensors of a `.tflite` model.
pub fn inspect(bytes: &[u8]) -> Result<ModelInfo, ExportError> {
    if bytes.len() < 8 || &bytes[4..8] != b"TFL3" {
        return Err(ExportError::NotTflite(if bytes.len() < 8 {
            format!("{} bytes is too short for a TFLite flatbuffer", bytes.len())
        } else {
            format!("bytes 4..8 are {:?}, not the TFLite identifier \"TFL3\"", String::from_utf8_lossy(&bytes[4..8]))
        }));
    }
    inspect_inner(bytes).map_err(ExportError::Malformed)
}

fn inspect_inner(bytes: &[u8]) -> Result<ModelInfo, String> {
    use tinyq_tflite::{schema, ReadAsRoot};
    let at = |what: String| move |e: planus::Error| format!("{what}: {e}");
    let model = schema::ModelRef::read_as_root(bytes).map_err(at("the model table".into()))?;
    let mut codes = Vec::new();
    let mut customs = Vec::new();
    for (i, oc) in model.operator_codes().map_err(at("Model.operator_codes".into()))?.into_iter().flatten().enumerate()
    {
        let what = format!("operator code {i}");
        let oc = oc.map_err(at(what.clone()))?;
        let deprecated = oc.deprecated_builtin_code().map_err(at(what.clone()))?;
        let builtin = oc.builtin_code().map_err(at(what.clone()))?;
        codes.push(builtin.max(deprecated as i32));
        customs.push(oc.custom_code().map_err(at(what))?.map(str::to_string));
    }
    let subgraphs = model.subgraphs().map_err(at("Model.subgraphs".into()))?.ok_or("the model has no subgraphs")?;
    if subgraphs.is_empty() {
        return Err("the model has no subgraphs".into());
    }
    let mut referenced = vec![false; codes.len()];
    let mut inputs = Vec::new();
    let mut outputs = Vec::new();
    for (s, sg) in subgraphs.iter().enumerate() {
        let what = format!("subgraph {s}");
        let sg = sg.map_err(at(what.clone()))?;
        for (k, op) in sg.operators().map_err(at(what.clone()))?.into_iter().flatten().enumerate() {
            let what = format!("{what} operator {k}");
            let idx = op.and_then(|op| op.opcode_index()).map_err(at(what.clone()))? as usize;
            let slot = referenced.get_mut(idx).ok_or_else(|| {
                format!("{what}: opcode index {idx} is out of range ({} operator codes)", codes.len())
            })?;
            *slot = true;
        }
        if s == 0 {
            let tensors = sg.tensors().map_err(at("subgraph 0 tensors".into()))?;
            let io = |ids: Option<planus::Vector<'_, i32>>, kind: &str| -> Result<Vec<IoTensor>, String> {
                ids.into_iter()
                    .flatten()
                    .map(|t| {
                        let list = tensors.ok_or("subgraph 0 has no tensors")?;
                        let i = usize::try_from(t)
                            .ok()
                            .filter(|&i| i < list.len())
                            .ok_or_else(|| format!("{kind} tensor index {t} is out of range"))?;
                        let t = list.get(i).ok_or_else(|| format!("tensor {i} is missing"))?;
                        read_io(t.map_err(at(format!("tensor {i}")))?, i)
                    })
                    .collect()
            };
            inputs = io(sg.inputs().map_err(at("subgraph 0 inputs".into()))?, "input")?;
            outputs = io(sg.outputs().map_err(at("subgraph 0 outputs".into()))?, "output")?;
        }
    }

    let mut used_ops: Vec<UsedOp> = Vec::new();
    for (i, &code) in codes.iter().enumerate() {
        if !referenced[i] {
            continue;
        }
        let custom = if code == CUSTOM_CODE { customs[i].clone() } else { None };
        if used_ops.iter().any(|u| u.code == code && u.custom == custom) {
            continue;
        }
        used_ops.push(UsedOp { code, name: op_name(code).to_string(), custom });
    }
    Ok(ModelInfo { operator_codes: codes, used_ops, inputs, outputs })
}

fn read_io(t: tinyq_tflite::schema::TensorRef<'_>, index: usize) -> Result<IoTensor, String> {
    let what = format!("tensor {index}");
    let err = |e: planus::Error| format!("{what}: {e}");
    let shape = t.shape().map_err(err)?.map(|v| v.iter().collect()).unwrap_or_default();
    let tensor_type = t.type_().map_err(err)? as i8;
    let name = t.name().map_err(err)?.map_or_else(|| format!("tensor{index}"), str::to_string);
    let (mut scales, mut zero_points) = (Vec::new(), Vec::new());
    if let Some(q) = t.quantization().map_err(err)? {
        scales = q.scale().map_err(err)?.map(|v| v.iter().collect()).unwrap_or_default();
        zero_points = q.zero_point().map_err(err)?.map(|v| v.iter().collect()).unwrap_or_default();
    }
    Ok(IoTensor { name, shape, tensor_type, scales, zero_points })
}

/// TFLM `TfLiteType` enum value, C type, `TfLitePtrUnion` member and short name of a schema
/// `TensorType`. The schema and the C enum number types differently (INT8 is 9 in the schema
/// and `kTfLiteInt8` = 9 in C, but FLOAT32 is 0 in the schema and `kTfLiteFloat32` = 1).
pub(crate) struct CType {
    pub tflite_type: i32,
    pub tflite_enum: &'static str,
    pub c_type: Option<&'static str>,
    pub member: Option<&'static str>,
    pub short: &'static str,
}

pub(crate) fn c_type(tensor_type: i8) -> CType {
    let (tflite_type, tflite_enum, c_type, member, short) = match tensor_type {
        0 => (1, "kTfLiteFloat32", Some("float"), Some("f"), "float32"),
        1 => (10, "kTfLiteFloat16", None, None, "float16"),
        2 => (2, "kTfLiteInt32", Some("int32_t"), Some("i32"), "int32"),
        3 => (3, "kTfLiteUInt8", Some("uint8_t"), Some("uint8"), "uint8"),
        4 => (4, "kTfLiteInt64", Some("int64_t"), Some("i64"), "int64"),
        6 => (6, "kTfLiteBool", None, None, "bool"),
        7 => (7, "kTfLiteInt16", Some("int16_t"), Some("i16"), "int16"),
        9 => (9, "kTfLiteInt8", Some("int8_t"), Some("int8"), "int8"),
        10 => (11, "kTfLiteFloat64", None, None, "float64"),
        _ => (0, "kTfLiteNoType", None, None, "unsupported"),
    };
    CType { tflite_type, tflite_enum, c_type, member, short }
}

/// Schema name of a builtin operator code, or `BUILTIN_<code>` for codes the schema table lacks.
pub fn op_name(code: i32) -> String {
    match tinyq_tflite::op_name(code) {
        "?" => format!("BUILTIN_{code}"),
        name => name.to_string(),
    }
}

/// The `tflite::MicroMutableOpResolver` method registering a builtin, if TFLM has one (from the
/// workspace's one builtin table).
pub fn resolver_method(code: i32) -> Option<&'static str> {
    tinyq_tflite::resolver_method(code)
}
