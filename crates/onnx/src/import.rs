//! The translation driver: graph inputs, the value table with layouts, glue emission, outputs.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use tinyq_ir::{numel, rules, DType, Graph, Node, Op, Tensor, TensorData, TensorId};

use crate::constfold::{self, Const};
use crate::proto::{type_proto, ModelProto, NodeProto};
use crate::{load_model_proto, ops, OnnxError};

/// Lowest and highest default-domain opset accepted.
pub const OPSET_RANGE: (i64, i64) = (7, 25);

/// How to import: knobs that do not change numerics.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// Keep the raw translation (no cleanup rules): for debugging the importer.
    pub skip_cleanup: bool,
    /// Shapes that fix graph inputs' dynamic axes (`--input-shape NAME=D0,D1,…`), by input name.
    pub input_shapes: Vec<(String, Vec<usize>)>,
}

/// One ONNX op tinyq imports, and the first opset whose definition it follows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpSupport {
    pub op: &'static str,
    pub since: i64,
    pub until: i64,
}

/// The ONNX ops (default domain) the importer understands.
pub fn supported_ops() -> Vec<OpSupport> {
    ops::TABLE.iter().map(|e| OpSupport { op: e.op, since: e.since, until: e.until }).collect()
}

/// How the IR stores an ONNX value.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Layout {
    /// Stored axis `k` is ONNX axis `perm[k]` (identity: stored as ONNX has it; `[0,2,3,1]`: NHWC).
    Perm(Vec<usize>),
    /// ONNX `[N, C·H·W]` (flattened from NCHW) stored as `[N, H·W·C]` (flattened from NHWC).
    Flat { c: usize, h: usize, w: usize },
}

pub(crate) fn identity(rank: usize) -> Vec<usize> {
    (0..rank).collect()
}

pub(crate) fn channels_last(rank: usize) -> Vec<usize> {
    std::iter::once(0).chain(2..rank).chain(std::iter::once(1)).collect()
}

pub(crate) fn invert(p: &[usize]) -> Vec<usize> {
    let mut inv = vec![0; p.len()];
    p.iter().enumerate().for_each(|(i, &v)| inv[v] = i);
    inv
}

#[derive(Clone, Debug)]
pub(crate) enum Value {
    Const(Const),
    Tensor { id: TensorId, layout: Layout },
}

pub(crate) struct Importer {
    pub g: Graph,
    values: HashMap<String, Value>,
    names: HashSet<String>,
    pub opset: i64,
    /// Name of the ONNX node being translated: the IR node computing one of its outputs is
    /// named after it, glue nodes after the tensor they produce.
    pub node_name: String,
    node_outputs: Vec<String>,
}

/// Reads an `.onnx` file and returns the cleaned-up NHWC IR graph.
pub fn import_model(path: &Path, opts: &ImportOptions) -> Result<Graph, OnnxError> {
    let model = load_model_proto(path)?;
    import_proto(&model, opts).map_err(|e| match e {
        OnnxError::Model(msg) => OnnxError::Model(format!("{}: {msg}", path.display())),
        node @ OnnxError::Node { .. } => OnnxError::InFile { path: path.to_path_buf(), source: Box::new(node) },
        other => other,
    })
}

pub(crate) fn import_proto(model: &ModelProto, opts: &ImportOptions) -> Result<Graph, OnnxError> {
    let opset = model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .unwrap_or(1);
    if opset < OPSET_RANGE.0 || opset > OPSET_RANGE.1 {
        return Err(OnnxError::Model(format!(
            "opset {opset} is outside the supported range {}..={}",
            OPSET_RANGE.0, OPSET_RANGE.1
        )));
    }
    let graph = model.graph.as_ref().ok_or_else(|| OnnxError::Model("no graph".into()))?;
    let mut imp = Importer {
        g: Graph::default(),
        values: HashMap::new(),
        names: HashSet::new(),
        opset,
        node_name: String::new(),
        node_outputs: Vec::new(),
    };
    for t in &graph.initializer {
        let c = constfold::from_proto(t).map_err(|msg| OnnxError::Model(format!("initializer `{}`: {msg}", t.name)))?;
        imp.values.insert(t.name.clone(), Value::Const(c));
    }
    for (name, _) in &opts.input_shapes {
        if !graph.input.iter().any(|vi| &vi.name == name && !imp.values.contains_key(name)) {
            let names: Vec<&str> =
                graph.input.iter().map(|vi| vi.name.as_str()).filter(|n| !imp.values.contains_key(*n)).collect();
            return Err(OnnxError::Model(format!(
                "--input-shape names `{name}`, which is not a graph input (inputs: {})",
                names.join(", ")
            )));
        }
    }
    for vi in &graph.input {
        if imp.values.contains_key(&vi.name) {
            continue;
        }
        let fixed = opts.input_shapes.iter().find(|(n, _)| n == &vi.name).map(|(_, s)| s.as_slice());
        let shape = input_shape(vi, fixed)
            .and_then(|s| tinyq_ir::size::tensor_numel(&s, 4).map(|_| s))
            .map_err(|msg| OnnxError::Model(format!("input `{}`: {msg}", vi.name)))?;
        let id = imp.g.add_tensor(Tensor::activation(vi.name.clone(), shape.clone(), DType::F32));
        imp.names.insert(vi.name.clone());
        imp.g.inputs.push(id);
        imp.values.insert(vi.name.clone(), Value::Tensor { id, layout: Layout::Perm(identity(shape.len())) });
    }
    if imp.g.inputs.is_empty() {
        return Err(OnnxError::Model("the graph has no (non-constant) input".into()));
    }
    let graph_outputs: Vec<&str> = graph.output.iter().map(|o| o.name.as_str()).collect();
    let hard_swish = ops::hard_swish_pairs(&graph.node, &graph_outputs);
    let fused_muls: HashSet<usize> = hard_swish.values().copied().collect();
    for (i, node) in graph.node.iter().enumerate() {
        if fused_muls.contains(&i) {
            continue;
        }
        imp.node_name = if node.name.is_empty() { format!("{}_{i}", node.op_type) } else { node.name.clone() };
        imp.node_outputs = node.output.clone();
        if let Some(&m) = hard_swish.get(&i) {
            let mul = &graph.node[m];
            imp.node_name = if mul.name.is_empty() { format!("{}_{m}", mul.op_type) } else { mul.name.clone() };
            imp.node_outputs = mul.output.clone();
            ops::fused_hard_swish(&mut imp, &node.input[0], &mul.output[0]).map_err(|msg| OnnxError::Node {
                node: imp_name(mul, m),
                op_type: "HardSigmoid + Mul (HardSwish)".into(),
                opset,
                msg,
            })?;
            continue;
        }
        let fail = |msg: String| OnnxError::Node { node: imp_name(node, i), op_type: node.op_type.clone(), opset, msg };
        if !(node.domain.is_empty() || node.domain == "ai.onnx") {
            return Err(fail(format!("domain `{}` is not supported (only the default ONNX domain)", node.domain)));
        }
        // ONNX is single-assignment: a value written twice (or a graph input or initializer
        // overwritten) is a broken file, not something to resolve by order.
        if let Some(o) = node.output.iter().find(|o| !o.is_empty() && imp.values.contains_key(*o)) {
            return Err(fail(format!("writes `{o}`, which is already defined")));
        }
        ops::translate(&mut imp, node).map_err(fail)?;
    }
    for vi in &graph.output {
        let v = imp
            .values
            .get(&vi.name)
            .cloned()
            .ok_or_else(|| OnnxError::Model(format!("graph output `{}` is not produced by any node", vi.name)))?;
        let id = imp.identity(&v).map_err(|msg| OnnxError::Model(format!("output `{}`: {msg}", vi.name)))?;
        if imp.g.tensors[id].name != vi.name {
            let clash = imp.g.tensors.iter().position(|t| t.name == vi.name);
            if let Some(old) = clash {
                imp.g.tensors[old].name = format!("{}/stored", vi.name);
            }
            imp.g.tensors[id].name = vi.name.clone();
        }
        imp.g.outputs.push(id);
    }
    let mut g = imp.g;
    if !opts.skip_cleanup {
        rules::run_to_fixpoint(&mut g, rules::CLEANUP);
    }
    name_outputs_after_layers(&mut g);
    g.validate().map_err(|e| OnnxError::Model(format!("imported graph is inconsistent: {e}")))?;
    Ok(g)
}

/// One name per layer: a layer's output tensor takes the layer's (ONNX node's) name, since a
/// written `.tflite` keeps only tensor names and its reader names each layer after its output, so
/// `inspect`, `debug`, `report` and the file agree. Graph inputs and outputs keep their names (a
/// layer writing a graph output is known by the output's name in a file), and so does a tensor
/// whose layer name another tensor already has.
fn name_outputs_after_layers(g: &mut Graph) {
    let mut taken: HashSet<String> = g.tensors.iter().map(|t| t.name.clone()).collect();
    for n in &g.nodes {
        let Some(&o) = n.outputs.first() else { continue };
        if g.inputs.contains(&o) || g.outputs.contains(&o) || g.tensors[o].name == n.name || taken.contains(&n.name) {
            continue;
        }
        taken.insert(n.name.clone());
        g.tensors[o].name = n.name.clone();
    }
}

fn imp_name(node: &NodeProto, i: usize) -> String {
    if node.name.is_empty() {
        format!("#{i}")
    } else {
        node.name.clone()
    }
}

/// The static shape of a graph input: its declared dims, with dynamic ones taken from `fixed`
/// (`--input-shape`) or, for the batch axis only, 1.
fn input_shape(vi: &crate::proto::ValueInfoProto, fixed: Option<&[usize]>) -> Result<Vec<usize>, String> {
    let Some(type_proto::Value::TensorType(tt)) = vi.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
        return Err("is not a tensor".into());
    };
    if tt.elem_type != 1 {
        return Err(format!(
            "has element type {}; tinyq imports float32 models",
            constfold::elem_type_name(tt.elem_type)
        ));
    }
    let dims = tt.shape.as_ref().map(|s| s.dim.as_slice()).unwrap_or(&[]);
    if let Some(f) = fixed {
        if f.len() != dims.len() {
            return Err(format!("--input-shape gives {} dimensions, the input has {}", f.len(), dims.len()));
        }
    }
    use crate::proto::tensor_shape_proto::dimension::Value as D;
    let hint = format!("; fix it with --input-shape {}=D0,D1,…", vi.name);
    dims.iter()
        .enumerate()
        .map(|(i, d)| match (&d.value, fixed.map(|f| f[i])) {
            (_, Some(0)) => Err(format!("--input-shape gives dimension {i} as 0")),
            (Some(D::DimValue(v)), Some(f)) if *v > 0 && *v as usize != f => {
                Err(format!("dimension {i} is {v} in the model, --input-shape gives {f}"))
            }
            (_, Some(f)) => Ok(f),
            (Some(D::DimValue(v)), None) if *v > 0 => tinyq_ir::size::dim(*v),
            (Some(D::DimValue(0)) | Some(D::DimParam(_)) | None, None) if i == 0 => Ok(1),
            (Some(D::DimParam(p)), None) => Err(format!("dimension {i} is dynamic (`{p}`){hint}")),
            _ => Err(format!("dimension {i} is unknown{hint}")),
        })
        .collect()
}

impl Importer {
    pub fn value(&self, name: &str) -> Result<Value, String> {
        self.values
            .get(name)
            .cloned()
            .ok_or_else(|| format!("input `{name}` is not produced by any node, initializer or graph input"))
    }

    pub fn set(&mut self, name: &str, v: Value) {
        self.values.insert(name.to_string(), v);
    }

    /// The ONNX (semantic) shape of a value.
    pub fn shape(&self, v: &Value) -> Vec<usize> {
        match v {
            Value::Const(c) => c.shape.clone(),
            Value::Tensor { id, layout: Layout::Perm(p) } => {
                let stored = &self.g.tensors[*id].shape;
                let mut s = vec![0; p.len()];
                p.iter().enumerate().for_each(|(k, &a)| s[a] = stored[k]);
                s
            }
            Value::Tensor { id, layout: Layout::Flat { .. } } => self.g.tensors[*id].shape.clone(),
        }
    }

    fn unique(&mut self, base: &str) -> String {
        unique_name(&mut self.names, base)
    }

    /// Adds a constant to the IR (f16 and f64 become f32: the IR computes in f32).
    pub fn add_const(&mut self, c: &Const, name: &str) -> TensorId {
        let data = match &c.data {
            TensorData::F16(_) => TensorData::F32(c.data.to_f32()),
            d => d.clone(),
        };
        let name = self.unique(name);
        self.g.add_tensor(Tensor::constant(name, c.shape.clone(), data))
    }

    /// Emits one IR node; its output shape comes from the op's shape rule (or `shape` for Reshape).
    pub fn emit(
        &mut self,
        op: Op,
        inputs: Vec<TensorId>,
        out_name: &str,
        shape: Option<Vec<usize>>,
    ) -> Result<TensorId, String> {
        let shapes: Vec<&[usize]> = inputs.iter().map(|&i| &self.g.tensors[i].shape[..]).collect();
        let inferred = op.infer_shapes(&shapes)?.remove(0);
        let out_shape = match shape {
            Some(s) if numel(&s) == numel(&inferred) || op != Op::Reshape => s,
            Some(s) => return Err(format!("cannot reshape {:?} to {s:?}", shapes[0])),
            None => inferred,
        };
        tinyq_ir::size::tensor_numel(&out_shape, DType::F32.size_bytes())
            .map_err(|e| format!("output `{out_name}`: {e}"))?;
        let name = self.unique(out_name);
        let node_name =
            if self.node_outputs.iter().any(|o| o == out_name) { self.node_name.clone() } else { name.clone() };
        let out = self.g.add_tensor(Tensor::activation(name, out_shape, DType::F32));
        self.g.nodes.push(Node { name: node_name, op, inputs, outputs: vec![out] });
        Ok(out)
    }

    pub fn reshape(&mut self, x: TensorId, shape: Vec<usize>, out_name: &str) -> Result<TensorId, String> {
        if self.g.tensors[x].shape == shape {
            return Ok(x);
        }
        self.emit(Op::Reshape, vec![x], out_name, Some(shape))
    }

    /// The value stored with layout `Perm(perm)`, adding a transpose (or a constant) as needed.
    pub fn stored_as(&mut self, v: &Value, perm: &[usize]) -> Result<TensorId, String> {
        match v {
            Value::Const(c) => {
                let t = c.transposed(perm);
                Ok(self.add_const(&t, &format!("{}/const", self.node_name)))
            }
            Value::Tensor { id, layout: Layout::Perm(q) } => {
                if q == perm {
                    return Ok(*id);
                }
                if q.len() != perm.len() {
                    return Err(format!("rank {} where rank {} is needed", q.len(), perm.len()));
                }
                let qinv = invert(q);
                let t: Vec<usize> = perm.iter().map(|&a| qinv[a]).collect();
                let name = format!("{}/transposed", self.g.tensors[*id].name);
                self.emit(Op::Transpose(tinyq_ir::op::Transpose { perm: t }), vec![*id], &name, None)
            }
            Value::Tensor { id, layout: Layout::Flat { c, h, w } } => {
                let n = self.g.tensors[*id].shape[0];
                let base = self.g.tensors[*id].name.clone();
                let x = self.reshape(*id, vec![n, *h, *w, *c], &format!("{base}/nhwc"))?;
                let nchw = Value::Tensor { id: x, layout: Layout::Perm(channels_last(4)) };
                let x = self.stored_as(&nchw, &identity(4))?;
                let flat = self.reshape(x, vec![n, c * h * w], &format!("{base}/flat"))?;
                let v = Value::Tensor { id: flat, layout: Layout::Perm(identity(2)) };
                self.stored_as(&v, perm)
            }
        }
    }

    /// The value stored exactly as ONNX has it.
    pub fn identity(&mut self, v: &Value) -> Result<TensorId, String> {
        let rank = self.shape(v).len();
        self.stored_as(v, &identity(rank))
    }
}

/// `base`, or `base_1`, `base_2`, … : the first that `taken` does not hold yet, now taken.
pub(crate) fn unique_name(taken: &mut HashSet<String>, base: &str) -> String {
    let mut name = base.to_string();
    let mut k = 1;
    while taken.contains(&name) {
        name = format!("{base}_{k}");
        k += 1;
    }
    taken.insert(name.clone());
    name
}
