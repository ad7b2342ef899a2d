//! The float engine: evaluates an IR graph in f32, one sample at a time.
//!
//! It is the numeric oracle of tinyq (calibration statistics, FP32 metrics, the reference that
//! quantized results are compared with), so it follows the ONNX/TFLite float semantics plainly.
//! Convolutions, depthwise convolutions and dense layers run register-tiled kernels (bias and
//! fused activation included, AVX-512 / AVX2 / portable chosen at run time, see [`with_isa`]);
//! grouped convolutions run im2col + `gemm`; straightforward loops elsewhere. Parallelism is
//! across samples (the caller's rayon loop), never inside a kernel, so results do not depend on
//! the thread count.
//!
//! Every tensor of a run is kept in [`Activations`] (indexed by tensor id) and can be watched
//! through the observer hook: calibration reads them, and a backward pass can walk them in
//! reverse. The engine does not quantize; fake quantization is a graph rewrite, not an engine mode.

pub mod backward;
mod ops;

pub use ops::tiled::{with_isa, Isa};

use tinyq_ir::{numel, DType, FusedActivation, Graph, Node, Op, TensorId};

/// Why a graph cannot be prepared or a sample cannot be run.
#[derive(Debug, thiserror::Error)]
pub enum FloatError {
    #[error("node `{node}` ({op}): {msg}")]
    Unsupported { node: String, op: &'static str, msg: String },
    #[error("input `{name}`: expected {expected} values (shape {shape:?}), got {got}")]
    InputSize { name: String, shape: Vec<usize>, expected: usize, got: usize },
    #[error("expected {expected} inputs, got {got}")]
    InputCount { expected: usize, got: usize },
    #[error(transparent)]
    Graph(#[from] tinyq_ir::IrError),
}

/// A graph prepared for float evaluation. Cheap to share across threads (`&Plan` is `Sync`).
pub struct Plan {
    graph: Graph,
    /// f32 copy of every constant, by tensor id.
    consts: Vec<Option<Vec<f32>>>,
    /// Weights packed once for the tiled kernels, by node index (convolutions with constant
    /// weights and bias).
    packed: Vec<Option<ops::tiled::Packed>>,
    /// Index of the last node reading each tensor (`usize::MAX` for graph outputs and tensors
    /// nothing reads), by tensor id.
    last_use: Vec<usize>,
    /// Which graph input each tensor is, by tensor id.
    input_of: Vec<Option<usize>>,
}

thread_local! {
    /// Buffers of finished tensors, reused by the next node and the next sample of [`Plan::run`].
    static POOL: std::cell::RefCell<Vec<Vec<f32>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// How many buffers a thread's pool keeps between runs.
const POOL_KEPT: usize = 32;

/// All tensors computed for one sample (constants excluded), by tensor id.
pub struct Activations {
    pub values: Vec<Option<Vec<f32>>>,
}

impl Activations {
    pub fn get(&self, t: TensorId) -> Option<&[f32]> {
        self.values[t].as_deref()
    }
}

impl Plan {
    /// Checks the graph's structure ([`Graph::validate`]) and that every op and dtype can run in
    /// float, and converts constants to f32.
    pub fn new(graph: &Graph) -> Result<Plan, FloatError> {
        graph.validate()?;
        for n in &graph.nodes {
            let bad = |msg: &str| FloatError::Unsupported { node: n.name.clone(), op: n.op.name(), msg: msg.into() };
            if n.op.converts_dtype() {
                return Err(bad("the float engine runs float graphs; use the integer engine"));
            }
            for &t in n.inputs.iter().chain(&n.outputs) {
                let tensor = graph.tensor(t);
                if !tensor.is_constant() && tensor.dtype != DType::F32 {
                    return Err(bad(&format!(
                        "tensor `{}` is {}: the float engine runs float models only",
                        tensor.name,
                        tensor.dtype.name()
                    )));
                }
            }
        }
        let consts: Vec<Option<Vec<f32>>> = graph.tensors.iter().map(|t| t.f32_data()).collect();
        let packed = graph.nodes.iter().map(|n| pack_weights(graph, &consts, n)).collect();
        let mut last_use = vec![usize::MAX; graph.tensors.len()];
        for (i, n) in graph.nodes.iter().enumerate() {
            n.inputs.iter().for_each(|&t| last_use[t] = i);
        }
        graph.outputs.iter().for_each(|&t| last_use[t] = usize::MAX);
        let mut input_of = vec![None; graph.tensors.len()];
        graph.inputs.iter().enumerate().for_each(|(k, &t)| input_of[t] = Some(k));
        Ok(Plan { graph: graph.clone(), consts, packed, last_use, input_of })
    }

    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Runs one sample and returns the graph outputs.
    ///
    /// Unlike [`Self::run_observed`] it keeps a tensor only until its last reader has run, and
    /// takes the buffers of computed tensors from a per-thread pool that outlives the call, so a
    /// loop over samples allocates little more than its outputs.
    pub fn run(&self, inputs: &[&[f32]]) -> Result<Vec<Vec<f32>>, FloatError> {
        let g = &self.graph;
        self.check_inputs(inputs)?;
        POOL.with(|pool| {
            let mut pool = pool.borrow_mut();
            let mut values: Vec<Option<Vec<f32>>> = vec![None; g.tensors.len()];
            for (i, (node, packed)) in g.nodes.iter().zip(&self.packed).enumerate() {
                let out = {
                    let args: Vec<&[f32]> = node
                        .inputs
                        .iter()
                        .map(|&t| match self.input_of[t] {
                            Some(k) => inputs[k],
                            None => values[t].as_deref().or(self.consts[t].as_deref()).expect("topological order"),
                        })
                        .collect();
                    let buf = pool.pop().unwrap_or_default();
                    self.eval_into(node, &args, packed.as_ref(), buf)
                };
                values[node.outputs[0]] = Some(out);
                for &t in &node.inputs {
                    if self.last_use[t] == i {
                        pool.extend(values[t].take());
                    }
                }
            }
            let outputs = g
                .outputs
                .iter()
                .map(|&o| match (self.input_of[o], values[o].take()) {
                    (_, Some(v)) => v,
                    (Some(k), None) => inputs[k].to_vec(),
                    (None, None) => self.consts[o].clone().unwrap_or_default(),
                })
                .collect();
            pool.extend(values.into_iter().flatten());
            pool.truncate(POOL_KEPT);
            Ok(outputs)
        })
    }

    fn check_inputs(&self, inputs: &[&[f32]]) -> Result<(), FloatError> {
        let g = &self.graph;
        if inputs.len() != g.inputs.len() {
            return Err(FloatError::InputCount { expected: g.inputs.len(), got: inputs.len() });
        }
        for (&id, data) in g.inputs.iter().zip(inputs) {
            let t = g.tensor(id);
            if data.len() != t.numel() {
                return Err(FloatError::InputSize {
                    name: t.name.clone(),
                    shape: t.shape.clone(),
                    expected: t.numel(),
                    got: data.len(),
                });
            }
        }
        Ok(())
    }

    /// Runs one sample, calling `observe` on every input and computed tensor in execution order,
    /// and returns all of them.
    pub fn run_observed(
        &self,
        inputs: &[&[f32]],
        observe: &mut dyn FnMut(TensorId, &[f32]),
    ) -> Result<Activations, FloatError> {
        let g = &self.graph;
        self.check_inputs(inputs)?;
        let mut values: Vec<Option<Vec<f32>>> = vec![None; g.tensors.len()];
        for (&id, data) in g.inputs.iter().zip(inputs) {
            observe(id, data);
            values[id] = Some(data.to_vec());
        }
        for (node, packed) in g.nodes.iter().zip(&self.packed) {
            let out = {
                let args: Vec<&[f32]> = node
                    .inputs
                    .iter()
                    .map(|&i| values[i].as_deref().or(self.consts[i].as_deref()).expect("topological order"))
                    .collect();
                self.eval(node, &args, packed.as_ref())
            };
            observe(node.outputs[0], &out);
            values[node.outputs[0]] = Some(out);
        }
        Ok(Activations { values })
    }

    /// The value of `t` in a finished run (computed or constant).
    pub fn value<'a>(&'a self, acts: &'a Activations, t: TensorId) -> &'a [f32] {
        acts.get(t).or(self.consts[t].as_deref()).unwrap_or(&[])
    }

    /// Evaluates one node of this plan's graph on the given input values (constants included,
    /// in the node's input order). Training uses it to run a graph whose weights change between
    /// steps.
    pub fn eval_node(&self, node: &Node, x: &[&[f32]]) -> Vec<f32> {
        self.eval(node, x, None)
    }

    /// [`Self::eval_node`] with the node's weights packed ahead, if they are.
    fn eval(&self, node: &Node, x: &[&[f32]], packed: Option<&ops::tiled::Packed>) -> Vec<f32> {
        self.eval_into(node, x, packed, Vec::new())
    }

    /// [`Self::eval`] into `out`'s memory.
    fn eval_into(&self, node: &Node, x: &[&[f32]], packed: Option<&ops::tiled::Packed>, mut out: Vec<f32>) -> Vec<f32> {
        let g = &self.graph;
        let shape = |k: usize| &g.tensor(node.inputs[k]).shape[..];
        let out_shape = &g.tensor(node.outputs[0]).shape[..];
        out.clear();
        out.resize(numel(out_shape), 0.0);
        match &node.op {
            Op::Conv2D(p) => {
                ops::conv::conv2d(x[0], shape(0), (x[1], shape(1)), x.get(2).copied(), packed, p, out_shape, &mut out)
            }
            Op::DepthwiseConv2D(p) => {
                ops::conv::depthwise_conv2d(x[0], shape(0), x[1], shape(1), x.get(2).copied(), p, out_shape, &mut out)
            }
            Op::FullyConnected(p) => {
                ops::fully_connected::fully_connected(x[0], x[1], shape(1), x.get(2).copied(), p.activation, &mut out)
            }
            Op::Add(p) => {
                ops::binary::binary(x[0], shape(0), x[1], shape(1), out_shape, p.activation, |a, b| a + b, &mut out)
            }
            Op::Sub(p) => {
                ops::binary::binary(x[0], shape(0), x[1], shape(1), out_shape, p.activation, |a, b| a - b, &mut out)
            }
            Op::Mul(p) => {
                ops::binary::binary(x[0], shape(0), x[1], shape(1), out_shape, p.activation, |a, b| a * b, &mut out)
            }
            Op::Maximum => ops::binary::binary(
                x[0],
                shape(0),
                x[1],
                shape(1),
                out_shape,
                FusedActivation::None,
                f32::max,
                &mut out,
            ),
            Op::Minimum => ops::binary::binary(
                x[0],
                shape(0),
                x[1],
                shape(1),
                out_shape,
                FusedActivation::None,
                f32::min,
                &mut out,
            ),
            Op::Concat(p) => {
                let shapes: Vec<&[usize]> = (0..x.len()).map(shape).collect();
                ops::data_movement::concat(x, &shapes, p.axis, p.activation, &mut out)
            }
            Op::Reshape => out.copy_from_slice(x[0]),
            Op::Transpose(p) => ops::data_movement::transpose(x[0], shape(0), &p.perm, &mut out),
            Op::StridedSlice(p) => {
                p.source_indices(shape(0)).into_iter().zip(out.iter_mut()).for_each(|(i, o)| *o = x[0][i])
            }
            Op::MirrorPad(p) => {
                p.source_indices(shape(0)).into_iter().zip(out.iter_mut()).for_each(|(i, o)| *o = x[0][i])
            }
            Op::Pad(p) => ops::data_movement::pad(x[0], shape(0), &p.pads, p.value, out_shape, &mut out),
            Op::ResizeNearest(p) => ops::data_movement::resize_nearest(x[0], shape(0), p, &mut out),
            Op::ResizeBilinear(p) => ops::data_movement::resize_bilinear(x[0], shape(0), p, &mut out),
            Op::MaxPool2D(p) => ops::pool::max_pool(x[0], shape(0), p, out_shape, &mut out),
            Op::AvgPool2D(p) => ops::pool::average_pool(x[0], shape(0), p, out_shape, &mut out),
            Op::Mean(p) => ops::reduce::mean(x[0], shape(0), &p.axes, &mut out),
            Op::ReduceMax(p) => ops::reduce::reduce_max(x[0], shape(0), &p.axes, &mut out),
            Op::ReduceSum(p) => ops::reduce::sum(x[0], shape(0), &p.axes, &mut out),
            Op::Relu => ops::activation::map(x[0], &mut out, |v| v.max(0.0)),
            Op::Relu6 => ops::activation::map(x[0], &mut out, |v| v.clamp(0.0, 6.0)),
            Op::Clip(c) => ops::activation::map(x[0], &mut out, |v| v.max(c.min).min(c.max)),
            Op::LeakyRelu(p) => ops::activation::map(x[0], &mut out, |v| if v >= 0.0 { v } else { p.alpha * v }),
            Op::PRelu => ops::binary::binary(
                x[0],
                shape(0),
                x[1],
                shape(1),
                out_shape,
                FusedActivation::None,
                |v, s| if v >= 0.0 { v } else { s * v },
                &mut out,
            ),
            Op::Elu => ops::activation::map(x[0], &mut out, |v| if v < 0.0 { v.exp() - 1.0 } else { v }),
            Op::Abs => ops::activation::map(x[0], &mut out, f32::abs),
            Op::Sigmoid => ops::activation::map(x[0], &mut out, |v| 1.0 / (1.0 + (-v).exp())),
            Op::Tanh => ops::activation::map(x[0], &mut out, f32::tanh),
            Op::HardSwish => ops::activation::map(x[0], &mut out, |v| v * (v + 3.0).clamp(0.0, 6.0) / 6.0),
            Op::Softmax(p) => ops::activation::softmax(x[0], *shape(0).last().unwrap_or(&1), p.beta, &mut out),
            Op::LogSoftmax => ops::activation::log_softmax(x[0], *shape(0).last().unwrap_or(&1), &mut out),
            Op::Quantize | Op::Dequantize => unreachable!("refused by Plan::new"),
        }
        out
    }
}

/// The tiled kernel's packing of a convolution's weights and bias, when both are constants.
fn pack_weights(g: &Graph, consts: &[Option<Vec<f32>>], n: &Node) -> Option<ops::tiled::Packed> {
    let Op::Conv2D(_) = n.op else { return None };
    let (xs, ws) = (&g.tensor(n.inputs[0]).shape, &g.tensor(n.inputs[1]).shape);
    if !ops::conv::is_tiled(xs, ws) {
        return None;
    }
    let w = consts[n.inputs[1]].as_deref()?;
    let bias = match n.inputs.get(2) {
        Some(&b) => Some(consts[b].as_deref()?),
        None => None,
    };
    Some(ops::tiled::Packed::new(w, ws[0], ws[1..].iter().product(), bias))
}
