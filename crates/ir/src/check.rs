//! The rules every graph obeys, whichever file it came from; [`Graph::validate`] applies them
//! before re-inferring shapes, so both importers and both engines see only graphs where ids are in
//! range, sizes are bounded, one node writes each tensor and quantization parameters are usable.

use crate::{size, DType, Graph, IrError, QParams, Tensor, TensorData, I4_MAX, I4_MIN};

/// Ids in range, bounded sizes, data matching shapes, finite weights, usable qparams.
pub(crate) fn check_tensors(g: &Graph) -> Result<(), IrError> {
    let n = g.tensors.len();
    let bad_id =
        |what: String, id: usize| IrError::Graph(format!("{what} refers to tensor #{id}, but the graph has {n}"));
    for (k, &i) in g.inputs.iter().enumerate() {
        if i >= n {
            return Err(bad_id(format!("graph input #{k}"), i));
        }
    }
    for (k, &o) in g.outputs.iter().enumerate() {
        if o >= n {
            return Err(bad_id(format!("graph output #{k}"), o));
        }
    }
    for node in &g.nodes {
        if let Some(&i) = node.inputs.iter().chain(&node.outputs).find(|&&i| i >= n) {
            return Err(bad_id(format!("node `{}`", node.name), i));
        }
    }
    check_int4(g)?;
    for t in &g.tensors {
        check_tensor(t).map_err(|msg| IrError::Graph(format!("tensor `{}`: {msg}", t.name)))?;
    }
    Ok(())
}

/// Int4 tensors are constant weights of the layers TFLM runs with int4 weights, read there as
/// weights and nowhere else.
fn check_int4(g: &Graph) -> Result<(), IrError> {
    for (i, t) in g.tensors.iter().enumerate().filter(|(_, t)| t.dtype == DType::I4) {
        if !t.is_constant() {
            return Err(IrError::Graph(format!("tensor `{}`: int4 is only for constant weights", t.name)));
        }
        for n in &g.nodes {
            for (k, _) in n.inputs.iter().enumerate().filter(|(_, &x)| x == i) {
                if n.op.int4_weights_input() != Some(k) {
                    return Err(IrError::Graph(format!(
                        "node `{}` ({}) reads int4 tensor `{}` as input {k}: int4 is only for the weights of \
                         Conv2D, DepthwiseConv2D and FullyConnected",
                        n.name,
                        n.op.name(),
                        t.name
                    )));
                }
            }
        }
    }
    Ok(())
}

/// No tensor is written twice: by two nodes, or by a node when it is a constant or graph input.
pub(crate) fn check_writers(g: &Graph) -> Result<(), IrError> {
    let mut writer: Vec<Option<&str>> = vec![None; g.tensors.len()];
    for &i in &g.inputs {
        writer[i] = Some("the graph input");
    }
    for (i, t) in g.tensors.iter().enumerate() {
        if t.is_constant() {
            writer[i] = Some("its constant data");
        }
    }
    for node in &g.nodes {
        for &o in &node.outputs {
            if let Some(w) = writer[o] {
                return Err(IrError::Graph(format!(
                    "node `{}` writes tensor `{}`, which is already given by {w}",
                    node.name, g.tensors[o].name
                )));
            }
            writer[o] = Some(&node.name);
        }
    }
    Ok(())
}

fn check_tensor(t: &Tensor) -> Result<(), String> {
    let numel = size::tensor_numel(&t.shape, t.dtype.size_bytes())?;
    if let Some(d) = &t.data {
        if d.len() != numel {
            return Err(format!("shape {:?} needs {numel} values but the data has {}", t.shape, d.len()));
        }
        if d.dtype() != t.dtype.storage() {
            return Err(format!("declared {} but holds {} data", t.dtype.name(), d.dtype().name()));
        }
        if let (DType::I4, TensorData::I8(v)) = (t.dtype, d) {
            if let Some((at, x)) = v.iter().enumerate().find(|(_, x)| !(I4_MIN..=I4_MAX).contains(*x)) {
                return Err(format!("int4 value #{at} is {x}, outside {I4_MIN}..={I4_MAX}"));
            }
        }
        let nan = match d {
            TensorData::F32(v) => v.iter().position(|x| x.is_nan()),
            TensorData::F16(v) => v.iter().position(|x| x.is_nan()),
            _ => None,
        };
        if let Some(at) = nan {
            return Err(format!("weight #{at} is NaN (the model's weights are corrupt)"));
        }
    }
    match &t.qparams {
        Some(q) => check_qparams(t, q),
        None if !t.is_constant() && matches!(t.dtype, DType::I8 | DType::I16) => {
            Err(format!("{} activation without quantization parameters", t.dtype.name()))
        }
        None => Ok(()),
    }
}

fn check_qparams(t: &Tensor, q: &QParams) -> Result<(), String> {
    if q.scale.is_empty() {
        return Err("quantization parameters without a scale".into());
    }
    if let Some((i, s)) = q.scale.iter().enumerate().find(|(_, s)| !(s.is_finite() && **s > 0.0)) {
        return Err(format!("quantization scale of channel {i} is {s}, not a finite positive number"));
    }
    let channels = match q.axis {
        Some(axis) => {
            let Some(&c) = t.shape.get(axis) else {
                return Err(format!("quantization axis {axis} is outside its {}-D shape", t.shape.len()));
            };
            if q.scale.len() != 1 && q.scale.len() != c {
                return Err(format!("{} scales along axis {axis} of size {c}", q.scale.len()));
            }
            q.scale.len()
        }
        None if q.scale.len() == 1 => 1,
        None => return Err(format!("{} scales but no quantization axis", q.scale.len())),
    };
    if q.zero_point.len() != channels && q.zero_point.len() != 1 {
        return Err(format!("{} zero points for {channels} scales", q.zero_point.len()));
    }
    let (lo, hi) = match t.dtype {
        DType::I4 => (I4_MIN as i32, I4_MAX as i32),
        DType::I8 => (i8::MIN as i32, i8::MAX as i32),
        DType::U8 => (0, u8::MAX as i32),
        DType::I16 => (i16::MIN as i32, i16::MAX as i32),
        _ => (i32::MIN, i32::MAX),
    };
    if let Some(z) = q.zero_point.iter().find(|z| !(lo..=hi).contains(*z)) {
        return Err(format!("zero point {z} is outside the {} range {lo}..={hi}", t.dtype.name()));
    }
    // TFLite's quantization spec: per-axis int8, all int16 and all int32 (bias) tensors are
    // symmetric.
    // int4 weights are symmetric too (TFLM's int4 kernels take no weight zero point).
    let symmetric = matches!(t.dtype, DType::I4 | DType::I16 | DType::I32)
        || (t.dtype == DType::I8 && q.axis.is_some() && q.scale.len() > 1);
    if let Some(z) = q.zero_point.iter().find(|z| symmetric && **z != 0) {
        let kind = match t.dtype {
            DType::I4 => "int4",
            DType::I16 => "int16",
            DType::I32 => "int32",
            _ => "per-channel int8",
        };
        return Err(format!("zero point {z}: {kind} tensors are symmetric (zero point 0) in TFLite"));
    }
    Ok(())
}
