use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use prost::Message;

use crate::proto::{tensor_proto::DataLocation, ModelProto, TensorProto};
use crate::OnnxError;

/// Protobuf messages cannot exceed 2 GiB; a larger file is refused before it is read.
pub const MAX_MODEL_BYTES: u64 = (1 << 31) - 1;

/// Reads and decodes a `.onnx` file, pulling external tensor data (a `.onnx.data` file beside
/// the model) into `raw_data` so that later stages never touch the file system.
pub fn load_model_proto(path: &Path) -> Result<ModelProto, OnnxError> {
    let io = |source| OnnxError::Io { path: path.to_path_buf(), source };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.is_dir() {
        return Err(OnnxError::Decode { path: path.into(), msg: "it is a directory".into() });
    }
    if meta.len() > MAX_MODEL_BYTES {
        return Err(OnnxError::TooLarge { path: path.into(), bytes: meta.len() });
    }
    let bytes = std::fs::read(path).map_err(io)?;
    if bytes.is_empty() {
        return Err(OnnxError::Decode { path: path.into(), msg: "the file is empty".into() });
    }
    let mut model = ModelProto::decode(&bytes[..])
        .map_err(|e| OnnxError::Decode { path: path.into(), msg: format!("protobuf: {e}") })?;
    let Some(graph) = model.graph.as_mut() else {
        return Err(OnnxError::Decode { path: path.into(), msg: "it has no graph".into() });
    };
    if graph.node.is_empty() && graph.output.is_empty() {
        return Err(OnnxError::Decode { path: path.into(), msg: "its graph is empty".into() });
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut files = HashMap::new();
    for t in graph.initializer.iter_mut() {
        resolve_external(t, dir, path, &mut files)?;
    }
    for n in graph.node.iter_mut() {
        for a in n.attribute.iter_mut() {
            if let Some(t) = a.t.as_mut() {
                resolve_external(t, dir, path, &mut files)?;
            }
        }
    }
    Ok(model)
}

fn resolve_external(
    t: &mut TensorProto,
    dir: &Path,
    model: &Path,
    files: &mut HashMap<PathBuf, Vec<u8>>,
) -> Result<(), OnnxError> {
    if t.data_location != DataLocation::External as i32 {
        return Ok(());
    }
    let err = |msg: String| OnnxError::Tensor { path: model.into(), tensor: t.name.clone(), msg };
    let get = |k: &str| t.external_data.iter().find(|e| e.key == k).map(|e| e.value.clone());
    let location = get("location").ok_or_else(|| err("external data without a location".into()))?;
    let rel = Path::new(&location);
    if rel.is_absolute() || rel.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(err(format!("external data location `{location}` leaves the model's folder")));
    }
    let parse = |k: &str| -> Result<Option<u64>, OnnxError> {
        get(k)
            .map(|v| v.parse::<u64>().map_err(|_| err(format!("external data {k} `{v}` is not a number"))))
            .transpose()
    };
    let offset = parse("offset")?.unwrap_or(0);
    let length = parse("length")?;
    let file = dir.join(rel);
    if !files.contains_key(&file) {
        let bytes =
            std::fs::read(&file).map_err(|e| err(format!("cannot read external data {}: {e}", file.display())))?;
        files.insert(file.clone(), bytes);
    }
    let data = &files[&file];
    let end = match length {
        Some(l) => offset.checked_add(l),
        None => Some(data.len() as u64),
    };
    let Some(end) = end.filter(|&e| e <= data.len() as u64 && offset <= e) else {
        return Err(err(format!(
            "external data {} is {} bytes, shorter than offset {offset} + length {}",
            file.display(),
            data.len(),
            length.unwrap_or(0)
        )));
    };
    t.raw_data = data[offset as usize..end as usize].to_vec();
    t.data_location = DataLocation::Default as i32;
    t.external_data.clear();
    Ok(())
}
