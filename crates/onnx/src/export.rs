//! tinyq IR → ONNX: writes a float graph back out as an ONNX model.
//!
//! The exported model has the IR graph's inputs and outputs (names, shapes, meaning): an IR graph
//! imported from ONNX keeps the original model's interface, one imported from TFLite keeps its
//! NHWC interface. Inside, every op is written in the ONNX operator set
//! (<https://onnx.ai/onnx/operators/>) with weights in ONNX's layouts (Conv `OIHW`, depthwise as a
//! grouped Conv `[C·M, 1, KH, KW]`, dense as Gemm with `transB = 1`) and fused activations as
//! separate Relu/Clip nodes.
//!
//! The key decision mirrors the importer's: rather than wrapping every Conv and pool in a
//! transpose pair, the exporter records for each IR tensor the ONNX values that hold it and how
//! (a permutation of the IR axes), and adds a Transpose only where a consumer needs
//! a layout no existing value has. Convolutions chain in NCHW, element-wise ops run in whatever
//! layout their inputs share (constants are permuted to match), IR Reshapes and Transposes are
//! free relabellings until a value is really needed, a transpose that moves only unit axes is
//! written as a Reshape, and a Gemm after a flattened NCHW block permutes its weight columns
//! instead of its input. Re-importing the result gives back the same IR ops (an activation
//! node after an op with a fused-activation slot fuses into it again).
//!
//! This module translates; it does not compute model numerics (weights are only permuted).

use std::collections::{HashMap, HashSet};
use std::path::Path;

use prost::Message;
use tinyq_ir::op::{Concat, Conv2D, FullyConnected, Mean, Pool2D, Transpose};
use tinyq_ir::{numel, DType, FusedActivation, Graph, Node, Op, Padding, TensorData, TensorId};

use crate::constfold::transpose_index;
use crate::proto::attribute_proto::AttributeType;
use crate::proto::tensor_shape_proto::{dimension, Dimension};
use crate::proto::{
    type_proto, AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto,
    TypeProto, ValueInfoProto,
};
use crate::{OnnxError, MAX_MODEL_BYTES};

/// The default-domain opset written unless asked otherwise.
pub const DEFAULT_OPSET: i64 = 17;

/// The opsets the exporter can write: HardSwish needs 14; up to 21 every op used here keeps the
/// definition written (ReduceMean takes its axes as an input from 18 on).
pub const EXPORT_OPSET_RANGE: (i64, i64) = (14, 21);

const FLOAT: i32 = 1;
const INT64: i32 = 7;

/// How to write the model.
#[derive(Clone, Debug)]
pub struct ExportOptions {
    /// Default-domain opset, within [`EXPORT_OPSET_RANGE`].
    pub opset: i64,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions { opset: DEFAULT_OPSET }
    }
}

/// The IR version that goes with an opset (the ONNX release that introduced the opset).
fn ir_version(opset: i64) -> i64 {
    match opset {
        ..=14 => 7,
        15..=18 => 8,
        19..=20 => 9,
        _ => 10,
    }
}

/// Translates a float IR graph into an ONNX model.
pub fn to_onnx_model(graph: &Graph, opts: &ExportOptions) -> Result<ModelProto, OnnxError> {
    if !(EXPORT_OPSET_RANGE.0..=EXPORT_OPSET_RANGE.1).contains(&opts.opset) {
        return Err(OnnxError::Model(format!(
            "cannot write opset {}: the exporter writes opsets {}..={}",
            opts.opset, EXPORT_OPSET_RANGE.0, EXPORT_OPSET_RANGE.1
        )));
    }
    check_graph(graph)?;
    let mut ex = Exporter::new(graph, opts.opset);
    for n in &graph.nodes {
        ex.node(n).map_err(|msg| {
            OnnxError::Model(format!("cannot export node `{}` ({}) to ONNX: {msg}", n.name, n.op.name()))
        })?;
    }
    let graph_proto =
        ex.into_graph().map_err(|msg| OnnxError::Model(format!("cannot export the graph to ONNX: {msg}")))?;
    Ok(ModelProto {
        ir_version: ir_version(opts.opset),
        producer_name: "tinyq".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(graph_proto),
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: opts.opset }],
        ..Default::default()
    })
}

/// The ONNX model of a float IR graph, serialized.
pub fn to_onnx_bytes(graph: &Graph, opts: &ExportOptions) -> Result<Vec<u8>, OnnxError> {
    encode(&to_onnx_model(graph, opts)?)
}

fn encode(model: &ModelProto) -> Result<Vec<u8>, OnnxError> {
    let len = model.encoded_len() as u64;
    if len > MAX_MODEL_BYTES {
        return Err(OnnxError::Model(format!(
            "the model would be {len} bytes, over the 2 GB limit of an ONNX protobuf"
        )));
    }
    Ok(model.encode_to_vec())
}

/// Writes the ONNX model of a float IR graph to `path` (see [`write_model`]).
pub fn write_onnx(graph: &Graph, path: &Path, opts: &ExportOptions) -> Result<(), OnnxError> {
    write_model(&to_onnx_model(graph, opts)?, path)
}

/// Writes an ONNX model to `path` through a temporary file in the same folder renamed into
/// place, so a failure leaves no partial file. The caller decides whether `path` may be
/// overwritten.
pub fn write_model(model: &ModelProto, path: &Path) -> Result<(), OnnxError> {
    let bytes = encode(model)?;
    let io = |source| OnnxError::Io { path: path.to_path_buf(), source };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    if let Err(e) = std::fs::write(&tmp, bytes) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(e)
    })
}

/// Refuses what ONNX float export cannot express: quantized tensors, integer activations,
/// duplicate or dangling interface tensors. Runs before anything is translated.
fn check_graph(g: &Graph) -> Result<(), OnnxError> {
    let n_t = g.tensors.len();
    let bad_id = g
        .inputs
        .iter()
        .chain(&g.outputs)
        .chain(g.nodes.iter().flat_map(|n| n.inputs.iter().chain(&n.outputs)))
        .find(|&&t| t >= n_t);
    if let Some(t) = bad_id {
        return Err(OnnxError::Model(format!("the graph refers to tensor #{t}, it has {n_t}")));
    }
    for n in &g.nodes {
        let fail =
            |msg: String| OnnxError::Model(format!("cannot export node `{}` ({}) to ONNX: {msg}", n.name, n.op.name()));
        if n.outputs.len() != 1 {
            return Err(fail(format!("it has {} outputs, expected 1", n.outputs.len())));
        }
        for &t in n.inputs.iter().chain(&n.outputs) {
            let tensor = &g.tensors[t];
            if tensor.qparams.is_some() || matches!(tensor.dtype, DType::I8 | DType::U8) {
                return Err(fail(format!(
                    "tensor `{}` is quantized ({}); only float models can be written as ONNX",
                    tensor.name,
                    tensor.dtype.name()
                )));
            }
            if !tensor.is_constant() && tensor.dtype != DType::F32 {
                return Err(fail(format!(
                    "tensor `{}` is {}; only float32 activations are supported",
                    tensor.name,
                    tensor.dtype.name()
                )));
            }
        }
    }
    for &t in &g.inputs {
        if g.tensors[t].is_constant() || g.tensors[t].dtype != DType::F32 {
            return Err(OnnxError::Model(format!("graph input `{}` is not a float32 activation", g.tensors[t].name)));
        }
    }
    for (k, &t) in g.outputs.iter().enumerate() {
        if g.outputs[..k].contains(&t) {
            return Err(OnnxError::Model(format!("tensor `{}` is listed twice as a graph output", g.tensors[t].name)));
        }
    }
    let mut seen = HashMap::new();
    for &t in g.inputs.iter().chain(&g.outputs) {
        let name = io_name(g, t);
        if seen.insert(name.clone(), t).is_some_and(|other| other != t) {
            return Err(OnnxError::Model(format!("two graph inputs/outputs are named `{name}`")));
        }
    }
    g.validate().map_err(|e| OnnxError::Model(format!("cannot export an inconsistent graph: {e}")))
}

/// An ONNX value holding an IR tensor: stored axis `k` is IR axis `perm[k]` (identity: as the IR
/// has it; `[0, 3, 1, 2]`: an NHWC tensor as NCHW).
#[derive(Clone, Debug)]
struct View {
    perm: Vec<usize>,
    name: String,
}

/// An ONNX value whose row-major data is an IR tensor's row-major data, whatever its shape.
#[derive(Clone, Debug)]
struct Alias {
    name: String,
    shape: Vec<usize>,
}

const NCHW: [usize; 4] = [0, 3, 1, 2];

fn identity(rank: usize) -> Vec<usize> {
    (0..rank).collect()
}

fn invert(p: &[usize]) -> Vec<usize> {
    let mut inv = vec![0; p.len()];
    p.iter().enumerate().for_each(|(i, &v)| inv[v] = i);
    inv
}

fn permuted(shape: &[usize], perm: &[usize]) -> Vec<usize> {
    perm.iter().map(|&a| shape[a]).collect()
}

/// True when reading `shape` through `perm` keeps the row-major data order (only unit axes move).
fn keeps_order(shape: &[usize], perm: &[usize]) -> bool {
    let moved: Vec<usize> = perm.iter().copied().filter(|&a| shape[a] != 1).collect();
    moved.windows(2).all(|w| w[0] < w[1])
}

fn suffix(perm: &[usize]) -> String {
    match perm {
        [0, 3, 1, 2] => "nchw".into(),
        p if p.iter().enumerate().all(|(i, &a)| i == a) => {
            if p.len() == 4 {
                "nhwc".into()
            } else {
                "ir".into()
            }
        }
        p => format!("perm{}", p.iter().map(|a| a.to_string()).collect::<String>()),
    }
}

fn attr_int(name: &str, v: i64) -> AttributeProto {
    AttributeProto { name: name.into(), i: v, r#type: AttributeType::Int as i32, ..Default::default() }
}

fn attr_ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto { name: name.into(), ints: v.to_vec(), r#type: AttributeType::Ints as i32, ..Default::default() }
}

fn attr_float(name: &str, v: f32) -> AttributeProto {
    AttributeProto { name: name.into(), f: v, r#type: AttributeType::Float as i32, ..Default::default() }
}

fn attr_string(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        s: v.as_bytes().to_vec(),
        r#type: AttributeType::String as i32,
        ..Default::default()
    }
}

fn value_info(name: &str, shape: &[usize]) -> ValueInfoProto {
    let dim = shape
        .iter()
        .map(|&d| Dimension { value: Some(dimension::Value::DimValue(d as i64)), denotation: String::new() })
        .collect();
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: FLOAT,
                shape: Some(TensorShapeProto { dim }),
            })),
            denotation: String::new(),
        }),
        doc_string: String::new(),
    }
}

fn i64s(v: &[usize]) -> Vec<i64> {
    v.iter().map(|&x| x as i64).collect()
}

/// ONNX `pads` `[top, left, bottom, right]` of a convolution or pool window.
fn window_pads(
    padding: Padding,
    input: [usize; 2],
    kernel: [usize; 2],
    stride: [usize; 2],
    dilation: [usize; 2],
) -> Result<Vec<i64>, String> {
    let mut before = [0usize; 2];
    let mut after = [0usize; 2];
    for d in 0..2 {
        let axis = padding.resolve(d, input[d], kernel[d], stride[d], dilation[d])?;
        before[d] = axis.pad_before;
        after[d] = match padding {
            Padding::Valid => 0,
            Padding::Explicit { bottom, right, .. } => {
                if d == 0 {
                    bottom
                } else {
                    right
                }
            }
            Padding::Same => {
                let eff = (kernel[d] - 1) * dilation[d] + 1;
                ((axis.out - 1) * stride[d] + eff).saturating_sub(input[d]) - axis.pad_before
            }
        };
    }
    Ok(vec![before[0] as i64, before[1] as i64, after[0] as i64, after[1] as i64])
}

struct Exporter<'g> {
    g: &'g Graph,
    opset: i64,
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    /// Every ONNX value name in use (graph inputs and outputs are reserved from the start).
    names: HashSet<String>,
    node_names: HashSet<String>,
    /// Per IR tensor: its ONNX values by layout, first the one its producer wrote.
    views: Vec<Vec<View>>,
    /// Per IR tensor: ONNX values with its row-major data (views that keep the order included).
    aliases: Vec<Vec<Alias>>,
    /// IR tensors computed by a Reshape, and the tensor they reshape.
    reshape_of: Vec<Option<TensorId>>,
    int_consts: HashMap<Vec<i64>, String>,
    scalars: HashMap<u32, String>,
}

impl<'g> Exporter<'g> {
    fn new(g: &'g Graph, opset: i64) -> Exporter<'g> {
        let n = g.tensors.len();
        let mut ex = Exporter {
            g,
            opset,
            nodes: Vec::new(),
            inits: Vec::new(),
            names: HashSet::new(),
            node_names: HashSet::new(),
            views: vec![Vec::new(); n],
            aliases: vec![Vec::new(); n],
            reshape_of: vec![None; n],
            int_consts: HashMap::new(),
            scalars: HashMap::new(),
        };
        for &t in g.inputs.iter().chain(&g.outputs) {
            let name = ex.io_name(t);
            ex.names.insert(name);
        }
        for &t in &g.inputs {
            let name = ex.io_name(t);
            ex.add_view(t, identity(g.tensors[t].shape.len()), name);
        }
        ex
    }

    /// The ONNX name of a graph input or output: the IR tensor's name (tensors without one get
    /// a positional name).
    fn io_name(&self, t: TensorId) -> String {
        io_name(self.g, t)
    }

    fn base_name(&self, t: TensorId) -> String {
        let name = &self.g.tensors[t].name;
        if name.is_empty() {
            format!("tensor_{t}")
        } else {
            name.clone()
        }
    }

    fn claim(&mut self, base: &str) -> String {
        crate::import::unique_name(&mut self.names, base)
    }

    fn claim_node(&mut self, base: &str) -> String {
        crate::import::unique_name(&mut self.node_names, base)
    }

    /// The name for a new view of `t`: a graph output's own name for its IR layout, the tensor's
    /// name for its first view when free, the tensor's name with a layout suffix otherwise.
    fn view_name(&mut self, t: TensorId, perm: &[usize]) -> String {
        let is_identity = perm.iter().enumerate().all(|(i, &a)| i == a);
        let computed = !self.g.tensors[t].is_constant() && !self.g.inputs.contains(&t);
        if self.g.outputs.contains(&t) && is_identity && computed {
            return self.io_name(t);
        }
        let base = self.base_name(t);
        if self.views[t].is_empty() && !self.names.contains(&base) {
            return self.claim(&base);
        }
        self.claim(&format!("{base}/{}", suffix(perm)))
    }

    fn add_view(&mut self, t: TensorId, perm: Vec<usize>, name: String) {
        let shape = &self.g.tensors[t].shape;
        if keeps_order(shape, &perm) {
            let alias = Alias { name: name.clone(), shape: permuted(shape, &perm) };
            self.aliases[t].push(alias);
        }
        self.views[t].push(View { perm, name });
    }

    fn emit(
        &mut self,
        op_type: &str,
        node_name: &str,
        inputs: Vec<String>,
        output: String,
        attribute: Vec<AttributeProto>,
    ) {
        let name = self.claim_node(node_name);
        self.nodes.push(NodeProto {
            input: inputs,
            output: vec![output],
            name,
            op_type: op_type.into(),
            attribute,
            ..Default::default()
        });
    }

    fn add_init(&mut self, base: &str, shape: &[usize], data_type: i32, raw_data: Vec<u8>) -> String {
        let name = self.claim(base);
        self.push_init(name, shape, data_type, raw_data)
    }

    /// Adds an initializer under a name already claimed.
    fn push_init(&mut self, name: String, shape: &[usize], data_type: i32, raw_data: Vec<u8>) -> String {
        self.inits.push(TensorProto {
            dims: i64s(shape),
            data_type,
            name: name.clone(),
            raw_data,
            ..Default::default()
        });
        name
    }

    fn f32_init(&mut self, base: &str, shape: &[usize], v: &[f32]) -> String {
        self.add_init(base, shape, FLOAT, v.iter().flat_map(|x| x.to_le_bytes()).collect())
    }

    /// A 1-D int64 initializer (shapes, pads, axes), shared between nodes asking for the same.
    fn int_const(&mut self, base: &str, v: &[i64]) -> String {
        if let Some(name) = self.int_consts.get(v) {
            return name.clone();
        }
        let name = self.add_init(base, &[v.len()], INT64, v.iter().flat_map(|x| x.to_le_bytes()).collect());
        self.int_consts.insert(v.to_vec(), name.clone());
        name
    }

    /// A float scalar initializer, shared between nodes asking for the same value.
    fn scalar(&mut self, v: f32) -> String {
        if let Some(name) = self.scalars.get(&v.to_bits()) {
            return name.clone();
        }
        let name = self.add_init(&format!("scalar_{v}"), &[], FLOAT, v.to_le_bytes().to_vec());
        self.scalars.insert(v.to_bits(), name.clone());
        name
    }

    fn const_data(&self, t: TensorId) -> Option<Vec<f32>> {
        self.g.tensors[t].data.as_ref().map(TensorData::to_f32)
    }

    /// An ONNX value with the row-major data of `t`, adding at most one node to get one.
    fn any_alias(&mut self, t: TensorId) -> Result<Alias, String> {
        if let Some(a) = self.aliases[t].first() {
            return Ok(a.clone());
        }
        if let Some(src) = self.reshape_of[t] {
            return self.any_alias(src);
        }
        let rank = self.g.tensors[t].shape.len();
        if self.g.tensors[t].is_constant() {
            self.get(t, &identity(rank))?;
        } else {
            self.transpose_view(t, &identity(rank))?;
        }
        self.aliases[t].first().cloned().ok_or_else(|| format!("tensor `{}` has no value", self.g.tensors[t].name))
    }

    /// An alias that exists without adding a node, if any.
    fn cheap_alias(&self, t: TensorId) -> bool {
        !self.aliases[t].is_empty()
            || self.g.tensors[t].is_constant()
            || self.reshape_of[t].is_some_and(|s| self.cheap_alias(s))
    }

    /// Whether `t` is available in layout `perm` without a Transpose.
    fn available(&self, t: TensorId, perm: &[usize]) -> bool {
        self.views[t].iter().any(|v| v.perm == perm)
            || (keeps_order(&self.g.tensors[t].shape, perm) && self.cheap_alias(t))
    }

    /// The ONNX value holding `t` in layout `perm`, adding a Reshape or Transpose when needed.
    fn get(&mut self, t: TensorId, perm: &[usize]) -> Result<String, String> {
        if let Some(v) = self.views[t].iter().find(|v| v.perm == perm) {
            return Ok(v.name.clone());
        }
        let shape = self.g.tensors[t].shape.clone();
        if perm.len() != shape.len() {
            return Err(format!(
                "tensor `{}` of rank {} read with a rank-{} layout",
                self.g.tensors[t].name,
                shape.len(),
                perm.len()
            ));
        }
        let target = permuted(&shape, perm);
        if let Some(data) = self.const_data(t) {
            let idx = transpose_index(&shape, perm);
            let values: Vec<f32> = idx.iter().map(|&i| data[i]).collect();
            let name = self.view_name(t, perm);
            let name = self.push_init(name, &target, FLOAT, values.iter().flat_map(|x| x.to_le_bytes()).collect());
            self.add_view(t, perm.to_vec(), name.clone());
            return Ok(name);
        }
        if keeps_order(&shape, perm) {
            let alias = self.any_alias(t)?;
            let name = if alias.shape == target {
                alias.name
            } else {
                let name = self.view_name(t, perm);
                let shape_const = self.int_const(&format!("{name}/shape"), &i64s(&target));
                self.emit("Reshape", &name.clone(), vec![alias.name, shape_const], name.clone(), vec![]);
                name
            };
            if !self.views[t].iter().any(|v| v.perm == perm) {
                self.add_view(t, perm.to_vec(), name.clone());
            }
            return Ok(name);
        }
        self.transpose_view(t, perm)
    }

    /// Adds a view of `t` in layout `perm` computed from an existing view (a Reshape when only
    /// unit axes move, a Transpose otherwise).
    fn transpose_view(&mut self, t: TensorId, perm: &[usize]) -> Result<String, String> {
        let shape = self.g.tensors[t].shape.clone();
        if self.views[t].is_empty() {
            let rank = shape.len();
            if perm == identity(rank).as_slice() {
                return Err(format!("tensor `{}` is read before it is computed", self.g.tensors[t].name));
            }
            self.get(t, &identity(rank))?;
        }
        let relative = |v: &View| -> Vec<usize> {
            let inv = invert(&v.perm);
            perm.iter().map(|&a| inv[a]).collect()
        };
        let src = self.views[t]
            .iter()
            .find(|v| keeps_order(&permuted(&shape, &v.perm), &relative(v)))
            .unwrap_or(&self.views[t][0])
            .clone();
        let rel = relative(&src);
        let target = permuted(&shape, perm);
        let name = self.view_name(t, perm);
        if keeps_order(&permuted(&shape, &src.perm), &rel) {
            let shape_const = self.int_const(&format!("{name}/shape"), &i64s(&target));
            self.emit("Reshape", &name.clone(), vec![src.name, shape_const], name.clone(), vec![]);
        } else {
            self.emit("Transpose", &name.clone(), vec![src.name], name.clone(), vec![attr_ints("perm", &i64s(&rel))]);
        }
        self.add_view(t, perm.to_vec(), name.clone());
        Ok(name)
    }

    /// The layout a single-input op works in: the one its input was produced in.
    fn primary(&self, t: TensorId) -> Vec<usize> {
        match self.views[t].first() {
            Some(v) => v.perm.clone(),
            None => identity(self.g.tensors[t].shape.len()),
        }
    }

    /// The layout shared by several same-rank inputs: the one most of them already have.
    fn shared_layout(&self, inputs: &[TensorId]) -> Vec<usize> {
        let rank = self.g.tensors[inputs[0]].shape.len();
        let computed: Vec<TensorId> = inputs.iter().copied().filter(|&t| !self.g.tensors[t].is_constant()).collect();
        let mut candidates: Vec<Vec<usize>> =
            computed.iter().flat_map(|&t| self.views[t].iter().map(|v| v.perm.clone())).collect();
        candidates.push(identity(rank));
        let mut best = identity(rank);
        let mut best_score = 0;
        for p in candidates {
            let score = computed.iter().filter(|&&t| self.available(t, &p)).count();
            if score > best_score {
                best = p;
                best_score = score;
            }
        }
        best
    }

    /// Writes the op computing IR tensor `out` in layout `perm`, then its fused activation.
    fn write_op(
        &mut self,
        n: &Node,
        op_type: &str,
        inputs: Vec<String>,
        attrs: Vec<AttributeProto>,
        perm: Vec<usize>,
        act: FusedActivation,
    ) -> Result<(), String> {
        let out = n.outputs[0];
        let name = self.view_name(out, &perm);
        let node_name = if n.name.is_empty() { format!("{op_type}_{out}") } else { n.name.clone() };
        match act {
            FusedActivation::None => self.emit(op_type, &node_name, inputs, name.clone(), attrs),
            act => {
                let pre = self.claim(&format!("{name}/pre_activation"));
                self.emit(op_type, &node_name, inputs, pre.clone(), attrs);
                self.activation(act, pre, &node_name, name.clone());
            }
        }
        self.add_view(out, perm, name);
        Ok(())
    }

    /// A fused activation as its own node: Relu, or Clip for the bounded ones.
    fn activation(&mut self, act: FusedActivation, input: String, node_name: &str, output: String) {
        let (op_type, inputs) = match act {
            FusedActivation::None => ("Identity", vec![input]),
            FusedActivation::Relu => ("Relu", vec![input]),
            FusedActivation::Relu6 => ("Clip", vec![input, self.scalar(0.0), self.scalar(6.0)]),
            FusedActivation::ReluN1To1 => ("Clip", vec![input, self.scalar(-1.0), self.scalar(1.0)]),
        };
        self.emit(op_type, &format!("{node_name}/{}", op_type.to_ascii_lowercase()), inputs, output, vec![]);
    }

    fn node(&mut self, n: &Node) -> Result<(), String> {
        match &n.op {
            Op::Conv2D(c) => self.conv(n, c, false),
            Op::DepthwiseConv2D(d) => self.conv(n, &d.conv, true),
            Op::FullyConnected(f) => self.fully_connected(n, f),
            Op::Add(b) => self.binary(n, "Add", b.activation),
            Op::Sub(b) => self.binary(n, "Sub", b.activation),
            Op::Mul(b) => self.binary(n, "Mul", b.activation),
            Op::Maximum => self.binary(n, "Max", FusedActivation::None),
            Op::Minimum => self.binary(n, "Min", FusedActivation::None),
            Op::Concat(c) => self.concat(n, c),
            Op::Reshape => {
                self.reshape_of[n.outputs[0]] = Some(n.inputs[0]);
                Ok(())
            }
            Op::Transpose(t) => self.transpose(n, t),
            Op::StridedSlice(p) => self.strided_slice(n, p),
            Op::Pad(p) => self.pad(n, &p.pads, "constant", Some(p.value)),
            Op::MirrorPad(p) if p.reflect => self.pad(n, &p.pads, "reflect", None),
            Op::MirrorPad(_) => Err("a symmetric MIRROR_PAD (the edge repeated) has no ONNX Pad mode".into()),
            Op::ResizeNearest(r) => self.resize_nearest(n, r, false),
            Op::ResizeBilinear(r) => self.resize_nearest(n, r, true),
            Op::MaxPool2D(p) => self.pool(n, p, "MaxPool"),
            Op::AvgPool2D(p) => self.pool(n, p, "AveragePool"),
            Op::Mean(m) => self.reduce(n, m, "ReduceMean", 18),
            Op::ReduceMax(m) => self.reduce(n, m, "ReduceMax", 18),
            Op::ReduceSum(m) => self.reduce(n, m, "ReduceSum", 13),
            Op::Relu => self.unary(n, "Relu", vec![], vec![]),
            Op::Relu6 => self.clip(n, 0.0, 6.0),
            Op::Clip(c) => self.clip(n, c.min, c.max),
            Op::LeakyRelu(l) => self.unary(n, "LeakyRelu", vec![], vec![attr_float("alpha", l.alpha)]),
            Op::PRelu => self.binary(n, "PRelu", FusedActivation::None),
            Op::Elu => self.unary(n, "Elu", vec![], vec![]),
            Op::Abs => self.unary(n, "Abs", vec![], vec![]),
            Op::Sigmoid => self.unary(n, "Sigmoid", vec![], vec![]),
            Op::Tanh => self.unary(n, "Tanh", vec![], vec![]),
            Op::HardSwish => self.unary(n, "HardSwish", vec![], vec![]),
            Op::Softmax(s) => self.softmax(n, s.beta, "Softmax"),
            Op::LogSoftmax => self.softmax(n, 1.0, "LogSoftmax"),
            Op::Quantize | Op::Dequantize => {
                Err("the graph is quantized; only float models can be written as ONNX".into())
            }
        }
    }

    fn conv(&mut self, n: &Node, c: &Conv2D, depthwise: bool) -> Result<(), String> {
        let (x, w) = (n.inputs[0], n.inputs[1]);
        let xs = self.g.tensors[x].shape.clone();
        let ws = self.g.tensors[w].shape.clone();
        let group = if depthwise { xs[3] } else { Conv2D::groups(&xs, &ws) };
        let kernel = [ws[1], ws[2]];
        let pads = window_pads(c.padding, [xs[1], xs[2]], kernel, c.stride, c.dilation)?;
        let mut inputs = vec![self.get(x, &NCHW)?, self.get(w, if depthwise { &[3, 0, 1, 2] } else { &NCHW })?];
        if let Some(&b) = n.inputs.get(2) {
            inputs.push(self.get(b, &[0])?);
        }
        let attrs = vec![
            attr_ints("kernel_shape", &i64s(&kernel)),
            attr_ints("strides", &i64s(&c.stride)),
            attr_ints("dilations", &i64s(&c.dilation)),
            attr_ints("pads", &pads),
            attr_int("group", group as i64),
        ];
        self.write_op(n, "Conv", inputs, attrs, NCHW.to_vec(), c.activation)
    }

    fn pool(&mut self, n: &Node, p: &Pool2D, op_type: &str) -> Result<(), String> {
        let x = n.inputs[0];
        let xs = self.g.tensors[x].shape.clone();
        let pads = window_pads(p.padding, [xs[1], xs[2]], p.filter, p.stride, [1, 1])?;
        let mut attrs = vec![
            attr_ints("kernel_shape", &i64s(&p.filter)),
            attr_ints("strides", &i64s(&p.stride)),
            attr_ints("pads", &pads),
        ];
        if op_type == "AveragePool" {
            attrs.push(attr_int("count_include_pad", 0));
        }
        let inputs = vec![self.get(x, &NCHW)?];
        self.write_op(n, op_type, inputs, attrs, NCHW.to_vec(), p.activation)
    }

    fn fully_connected(&mut self, n: &Node, f: &FullyConnected) -> Result<(), String> {
        let (x, w) = (n.inputs[0], n.inputs[1]);
        let xs = self.g.tensors[x].shape.clone();
        let ws = self.g.tensors[w].shape.clone();
        let out_shape = self.g.tensors[n.outputs[0]].shape.clone();
        let (units, inner) = (ws[0], ws[1]);
        let rows = numel(&xs) / inner;
        let bias = match n.inputs.get(2) {
            Some(&b) => Some(self.get(b, &[0])?),
            None => None,
        };
        if f.keep_num_dims && xs.len() > 2 {
            // Gemm is 2-D only: MatMul with the transposed weights, then the bias.
            let a = self.get(x, &identity(xs.len()))?;
            let wt = self.get(w, &[1, 0])?;
            let inputs = vec![a, wt];
            let Some(bias) = bias else {
                return self.write_op(n, "MatMul", inputs, vec![], identity(out_shape.len()), f.activation);
            };
            let prod = self.claim(&format!("{}/matmul", self.base_name(n.outputs[0])));
            self.emit("MatMul", &format!("{}/matmul", n.name), inputs, prod.clone(), vec![]);
            return self.write_op(n, "Add", vec![prod, bias], vec![], identity(out_shape.len()), f.activation);
        }
        let (a, b) = self.dense_input(x, w, rows, inner)?;
        let mut inputs = vec![a, b];
        inputs.extend(bias);
        let attrs = vec![attr_int("transB", 1)];
        let gemm_shape = [rows, units];
        if out_shape[..] == gemm_shape {
            return self.write_op(n, "Gemm", inputs, attrs, identity(2), f.activation);
        }
        // keep_num_dims on a rank-1 input: a Gemm on one row, reshaped back.
        let out = n.outputs[0];
        let gemm = self.claim(&format!("{}/gemm", self.base_name(out)));
        let node_name = if n.name.is_empty() { format!("Gemm_{out}") } else { n.name.clone() };
        self.emit("Gemm", &node_name, inputs, gemm.clone(), attrs);
        let pre = if f.activation == FusedActivation::None {
            gemm
        } else {
            let act = self.claim(&format!("{gemm}/act"));
            self.activation(f.activation, gemm, &node_name, act.clone());
            act
        };
        let out_name = self.view_name(out, &identity(out_shape.len()));
        let shape_const = self.int_const(&format!("{out_name}/shape"), &i64s(&out_shape));
        self.emit("Reshape", &out_name.clone(), vec![pre, shape_const], out_name.clone(), vec![]);
        self.add_view(out, identity(out_shape.len()), out_name);
        Ok(())
    }

    /// Gemm's `A` (`[rows, inner]`) and `B` (`[units, inner]`). When the input exists only as a
    /// batch-first layout of a block whose rows it flattens (an NCHW feature map before a
    /// Flatten), that layout is flattened directly and the weight columns are permuted to match.
    fn dense_input(&mut self, x: TensorId, w: TensorId, rows: usize, inner: usize) -> Result<(String, String), String> {
        if !self.cheap_alias(x) {
            if let (Some(wdata), Some((view, block))) = (self.const_data(w), self.flattened_block(x, rows)) {
                let bshape = self.g.tensors[block].shape.clone();
                // Row 0 of the view, as flat indices into row 0 of the IR block.
                let cols = &transpose_index(&bshape, &view.perm)[..inner];
                let units = wdata.len() / inner;
                let permuted_w: Vec<f32> = (0..units)
                    .flat_map(|o| cols.iter().map(move |&c| (o, c)))
                    .map(|(o, c)| wdata[o * inner + c])
                    .collect();
                let base = self.base_name(w);
                let b = self.f32_init(&base, &[units, inner], &permuted_w);
                let name = self.claim(&format!("{}/flat", view.name));
                let shape_const = self.int_const(&format!("{name}/shape"), &[rows as i64, inner as i64]);
                self.emit("Reshape", &name.clone(), vec![view.name, shape_const], name.clone(), vec![]);
                return Ok((name, b));
            }
        }
        let alias = self.any_alias(x)?;
        let a = if alias.shape == [rows, inner] {
            alias.name
        } else {
            let base = self.base_name(x);
            let name = self.claim(&format!("{base}/rows"));
            let shape_const = self.int_const(&format!("{name}/shape"), &[rows as i64, inner as i64]);
            self.emit("Reshape", &name.clone(), vec![alias.name, shape_const], name.clone(), vec![]);
            self.aliases[x].push(Alias { name: name.clone(), shape: vec![rows, inner] });
            name
        };
        Ok((a, self.get(w, &[0, 1])?))
    }

    /// `x` or a tensor it reshapes, with a batch-first view whose rows are `x`'s rows.
    fn flattened_block(&self, x: TensorId, rows: usize) -> Option<(View, TensorId)> {
        let mut t = Some(x);
        while let Some(cur) = t {
            let shape = &self.g.tensors[cur].shape;
            if shape.first() == Some(&rows) {
                if let Some(v) = self.views[cur].iter().find(|v| v.perm.first() == Some(&0)) {
                    return Some((v.clone(), cur));
                }
            }
            t = self.reshape_of[cur];
        }
        None
    }

    /// An operand of an element-wise op in layout `perm` of rank `rank` (lower-rank operands
    /// broadcast from the right: constants are expanded, computed tensors need the IR layout).
    fn operand(&mut self, t: TensorId, perm: &[usize], rank: usize) -> Result<String, String> {
        let shape = self.g.tensors[t].shape.clone();
        if shape.len() == rank {
            return self.get(t, perm);
        }
        if perm.iter().enumerate().all(|(i, &a)| i == a) {
            return self.get(t, &identity(shape.len()));
        }
        if let Some(data) = self.const_data(t) {
            let expanded: Vec<usize> =
                std::iter::repeat_n(1, rank - shape.len()).chain(shape.iter().copied()).collect();
            let idx = transpose_index(&expanded, perm);
            let values: Vec<f32> = idx.iter().map(|&i| data[i]).collect();
            let base = format!("{}/{}", self.base_name(t), suffix(perm));
            return Ok(self.f32_init(&base, &permuted(&expanded, perm), &values));
        }
        self.get(t, &identity(shape.len()))
    }

    fn binary(&mut self, n: &Node, op_type: &str, act: FusedActivation) -> Result<(), String> {
        let rank = self.g.tensors[n.outputs[0]].shape.len();
        let computed_full =
            n.inputs.iter().all(|&t| self.g.tensors[t].is_constant() || self.g.tensors[t].shape.len() == rank);
        let full: Vec<TensorId> = n.inputs.iter().copied().filter(|&t| self.g.tensors[t].shape.len() == rank).collect();
        let perm = if computed_full && !full.is_empty() { self.shared_layout(&full) } else { identity(rank) };
        let a = self.operand(n.inputs[0], &perm, rank)?;
        let b = self.operand(n.inputs[1], &perm, rank)?;
        self.write_op(n, op_type, vec![a, b], vec![], perm, act)
    }

    fn concat(&mut self, n: &Node, c: &Concat) -> Result<(), String> {
        let perm = self.shared_layout(&n.inputs);
        let axis = perm.iter().position(|&a| a == c.axis).ok_or("axis out of range")?;
        let inputs = n.inputs.iter().map(|&t| self.get(t, &perm)).collect::<Result<Vec<_>, _>>()?;
        self.write_op(n, "Concat", inputs, vec![attr_int("axis", axis as i64)], perm, c.activation)
    }

    fn transpose(&mut self, n: &Node, t: &Transpose) -> Result<(), String> {
        let (x, out) = (n.inputs[0], n.outputs[0]);
        if self.views[x].is_empty() {
            self.get(x, &identity(t.perm.len()))?;
        }
        // Output axis i is input axis perm[i]: a relabelling of every value holding the input.
        let inv = invert(&t.perm);
        for v in self.views[x].clone() {
            self.add_view(out, v.perm.iter().map(|&a| inv[a]).collect(), v.name);
        }
        Ok(())
    }

    /// Pad in `mode` (`constant` with `value`, or `reflect`).
    fn pad(&mut self, n: &Node, pads: &[[usize; 2]], mode: &str, value: Option<f32>) -> Result<(), String> {
        let x = n.inputs[0];
        let perm = self.primary(x);
        let begins = perm.iter().map(|&a| pads[a][0] as i64);
        let ends = perm.iter().map(|&a| pads[a][1] as i64);
        let pads: Vec<i64> = begins.chain(ends).collect();
        let data = self.get(x, &perm)?;
        let pads = self.int_const(&format!("{}/pads", self.base_name(n.outputs[0])), &pads);
        let mut inputs = vec![data, pads];
        inputs.extend(value.map(|v| self.scalar(v)));
        self.write_op(n, "Pad", inputs, vec![attr_string("mode", mode)], perm, FusedActivation::None)
    }

    /// ONNX Slice (opset 10+: starts, ends, axes, steps as inputs) in the input's stored layout,
    /// then a Squeeze of the shrunk axes. A stop of −1 going backwards (down to index 0) is
    /// written as `−(size + 1)`, which ONNX clamps to before the first element.
    fn strided_slice(&mut self, n: &Node, p: &tinyq_ir::op::StridedSlice) -> Result<(), String> {
        let x = n.inputs[0];
        let perm = self.primary(x);
        let data = self.get(x, &perm)?;
        let shape = &self.g.tensors[x].shape;
        let ends: Vec<i64> =
            perm.iter().map(|&a| if p.end[a] < 0 { -(shape[a] as i64) - 1 } else { p.end[a] }).collect();
        let starts: Vec<i64> = perm.iter().map(|&a| p.begin[a]).collect();
        let steps: Vec<i64> = perm.iter().map(|&a| p.strides[a]).collect();
        let base = self.base_name(n.outputs[0]);
        let axes: Vec<i64> = (0..perm.len() as i64).collect();
        let inputs = vec![
            data,
            self.int_const(&format!("{base}/starts"), &starts),
            self.int_const(&format!("{base}/ends"), &ends),
            self.int_const(&format!("{base}/axes"), &axes),
            self.int_const(&format!("{base}/steps"), &steps),
        ];
        let shrunk = |a: usize| p.shrink_axis_mask & (1 << a) != 0;
        if p.shrink_axis_mask == 0 {
            return self.write_op(n, "Slice", inputs, vec![], perm, FusedActivation::None);
        }
        let sliced = format!("{base}/sliced");
        self.emit("Slice", &format!("{}/slice", n.name), inputs, sliced.clone(), vec![]);
        let squeezed: Vec<i64> = (0..perm.len()).filter(|&k| shrunk(perm[k])).map(|k| k as i64).collect();
        let out_perm =
            perm.iter().filter(|&&a| !shrunk(a)).map(|&a| a - (0..a).filter(|&r| shrunk(r)).count()).collect();
        // Every opset written (14+) takes Squeeze's axes as an input.
        let axes = self.int_const(&format!("{base}/squeeze_axes"), &squeezed);
        self.write_op(n, "Squeeze", vec![sliced, axes], vec![], out_perm, FusedActivation::None)
    }

    /// Resize (opset 11+: X, roi, scales, sizes) in NCHW with the coordinate mode and rounding that
    /// give TFLite's source indices (nearest), or its interpolation positions (`linear`).
    fn resize_nearest(&mut self, n: &Node, r: &tinyq_ir::op::ResizeNearest, linear: bool) -> Result<(), String> {
        let (coord, rounding) = match (r.align_corners, r.half_pixel_centers, linear) {
            (false, false, _) => ("asymmetric", "floor"),
            (false, true, false) => ("tf_half_pixel_for_nn", "floor"),
            (false, true, true) => ("half_pixel", "floor"),
            (true, false, _) => ("align_corners", "round_prefer_ceil"),
            (true, true, _) => {
                return Err("a resize with both align_corners and half_pixel_centers has no ONNX form".into())
            }
        };
        let x = n.inputs[0];
        let xs = self.g.tensors[x].shape.clone();
        let data = self.get(x, &NCHW)?;
        let sizes = [xs[0] as i64, xs[3] as i64, r.size[0] as i64, r.size[1] as i64];
        let sizes = self.int_const(&format!("{}/sizes", self.base_name(n.outputs[0])), &sizes);
        let mut attrs = vec![
            attr_string("mode", if linear { "linear" } else { "nearest" }),
            attr_string("coordinate_transformation_mode", coord),
        ];
        if !linear {
            attrs.push(attr_string("nearest_mode", rounding));
        }
        self.write_op(
            n,
            "Resize",
            vec![data, String::new(), String::new(), sizes],
            attrs,
            NCHW.to_vec(),
            FusedActivation::None,
        )
    }

    /// ReduceMean / ReduceMax (axes an input from opset 18).
    /// `op_type` takes its axes as an input from opset `axes_input_since`.
    fn reduce(&mut self, n: &Node, m: &Mean, op_type: &str, axes_input_since: i64) -> Result<(), String> {
        let x = n.inputs[0];
        let perm = self.primary(x);
        let data = self.get(x, &perm)?;
        if m.axes.is_empty() {
            return self.write_op(n, "Identity", vec![data], vec![], perm, FusedActivation::None);
        }
        let axes: Vec<i64> = (0..perm.len()).filter(|&k| m.axes.contains(&perm[k])).map(|k| k as i64).collect();
        let out_perm = if m.keep_dims {
            perm
        } else {
            perm.iter()
                .filter(|a| !m.axes.contains(a))
                .map(|&a| a - m.axes.iter().filter(|&&r| r < a).count())
                .collect()
        };
        let keep = attr_int("keepdims", i64::from(m.keep_dims));
        if self.opset >= axes_input_since {
            let axes = self.int_const(&format!("{}/axes", self.base_name(n.outputs[0])), &axes);
            self.write_op(n, op_type, vec![data, axes], vec![keep], out_perm, FusedActivation::None)
        } else {
            self.write_op(n, op_type, vec![data], vec![keep, attr_ints("axes", &axes)], out_perm, FusedActivation::None)
        }
    }

    fn unary(&mut self, n: &Node, op_type: &str, extra: Vec<String>, attrs: Vec<AttributeProto>) -> Result<(), String> {
        let x = n.inputs[0];
        let perm = self.primary(x);
        let mut inputs = vec![self.get(x, &perm)?];
        inputs.extend(extra);
        self.write_op(n, op_type, inputs, attrs, perm, FusedActivation::None)
    }

    fn clip(&mut self, n: &Node, min: f32, max: f32) -> Result<(), String> {
        let mut bounds = vec![
            if min == f32::NEG_INFINITY { String::new() } else { self.scalar(min) },
            if max == f32::INFINITY { String::new() } else { self.scalar(max) },
        ];
        while bounds.last().is_some_and(String::is_empty) {
            bounds.pop();
        }
        self.unary(n, "Clip", bounds, vec![])
    }

    /// Softmax or LogSoftmax (`op_type`) along the IR's last axis.
    fn softmax(&mut self, n: &Node, beta: f32, op_type: &str) -> Result<(), String> {
        let x = n.inputs[0];
        let perm = self.primary(x);
        let rank = perm.len();
        let axis = perm.iter().position(|&a| a == rank - 1).ok_or("softmax of a scalar")?;
        let mut data = self.get(x, &perm)?;
        if beta != 1.0 {
            let scaled = self.claim(&format!("{data}/beta"));
            let beta = self.scalar(beta);
            self.emit("Mul", &format!("{}/beta", n.name), vec![data, beta], scaled.clone(), vec![]);
            data = scaled;
        }
        self.write_op(n, op_type, vec![data], vec![attr_int("axis", axis as i64)], perm, FusedActivation::None)
    }

    /// Graph outputs in the IR layout under their own names, and the graph proto.
    fn finish_outputs(&mut self) -> Result<(), String> {
        for &t in &self.g.outputs {
            let rank = self.g.tensors[t].shape.len();
            let have = self.get(t, &identity(rank))?;
            let want = self.io_name(t);
            if have == want {
                continue;
            }
            let produced_here = self.nodes.iter().any(|n| n.output[0] == have);
            let interface = self.g.inputs.iter().chain(&self.g.outputs).any(|&i| self.io_name(i) == have);
            if produced_here && !interface {
                for n in &mut self.nodes {
                    n.input
                        .iter_mut()
                        .chain(n.output.iter_mut())
                        .filter(|s| **s == have)
                        .for_each(|s| s.clone_from(&want));
                }
                for views in &mut self.views {
                    views.iter_mut().filter(|v| v.name == have).for_each(|v| v.name.clone_from(&want));
                }
                for aliases in &mut self.aliases {
                    aliases.iter_mut().filter(|a| a.name == have).for_each(|a| a.name.clone_from(&want));
                }
            } else {
                let node_name = format!("{want}/identity");
                self.emit("Identity", &node_name, vec![have], want, vec![]);
            }
        }
        Ok(())
    }

    fn into_graph(mut self) -> Result<GraphProto, String> {
        self.finish_outputs()?;
        let g = self.g;
        Ok(GraphProto {
            node: self.nodes,
            name: "tinyq".into(),
            initializer: self.inits,
            input: g.inputs.iter().map(|&t| value_info(&io_name(g, t), &g.tensors[t].shape)).collect(),
            output: g.outputs.iter().map(|&t| value_info(&io_name(g, t), &g.tensors[t].shape)).collect(),
            ..Default::default()
        })
    }
}

fn io_name(g: &Graph, t: TensorId) -> String {
    let name = &g.tensors[t].name;
    if !name.is_empty() {
        return name.clone();
    }
    match g.inputs.iter().position(|&i| i == t) {
        Some(k) => format!("input_{k}"),
        None => format!("output_{}", g.outputs.iter().position(|&o| o == t).unwrap_or(0)),
    }
}
