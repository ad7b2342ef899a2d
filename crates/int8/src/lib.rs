//! The integer engine: evaluates a quantized IR graph exactly as TensorFlow Lite Micro's reference
//! kernels do, so that what tinyq reports is what the microcontroller will compute.
//!
//! [`Int8Plan::new`] walks the graph once and prepares every node through the `tinyq-kernels`
//! `prepare_*` functions: it checks dtypes, quantization and shapes, and turns scales into
//! fixed-point multipliers, shifts and activation ranges. [`Int8Plan::run`] then checks the caller's
//! inputs and evaluates the nodes in order; every tensor of the run is kept and can be watched
//! through [`Int8Plan::run_observed`] for per-layer debugging.
//!
//! What this crate is not: it does not quantize graphs (that is `tinyq-quant`), hold integer
//! arithmetic of its own beyond gluing kernels to tensors (that is `tinyq-kernels`), or fall back
//! to float for ops it cannot run — it refuses them in prepare, naming the node and op.
//!
//! Float nodes: a model may itself keep a CONV_2D, DEPTHWISE_CONV_2D or FULLY_CONNECTED in
//! float32, between a DEQUANTIZE and a QUANTIZE (tinyq's accuracy-budget search does). Those run
//! on `float_ref`, which follows TFLM's float reference kernels in summation order, so they stay
//! bit-exact too; they are the one exception to "no float math while evaluating", besides the
//! QUANTIZE / DEQUANTIZE kernels themselves.
//!
//! 16x8 nodes: CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED with int16 activations (zero point
//! 0), int8 weights and int64 bias run on `tinyq_kernels::conv16`; QUANTIZE converts between int8
//! and int16 at their edges. ADD, CONCATENATION, the pools, MEAN, RESHAPE and PAD also run on int16
//! tensors.
//! Graph inputs may be int8, int16, int32 or float32 (an int16 input lets one int16 layer be run
//! alone, as the quantization debugger does).
//!
//! Key decision: the prepare/eval split of TFLM. All float → fixed-point work happens in
//! [`Int8Plan::new`]; once the inputs are checked, evaluation cannot fail and does no float math,
//! except at the graph edge where TFLM does too (QUANTIZE from float32, DEQUANTIZE to float32).
//! The default build's double rounding is used throughout (`Rounding::Double`).
//!
//! Speed: CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, elementwise ADD, PAD, the pools and MEAN run the
//! bit-identical kernels of `tinyq_kernels::fast` (weights packed in prepare, SIMD where the CPU
//! has it) unless the plan is made with [`Kernels::Reference`]; [`Int8Plan::run_batch`] runs
//! many samples per call. Neither changes a byte of any output.

mod batch;
mod error;
mod float_ref;
mod ops;
mod view;

use tinyq_ir::{DType, Graph, TensorData, TensorId};

pub use error::Int8Error;
pub use view::{PerChannel, StepKind, StepView};

/// Which int8 kernels a plan runs for CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED. All give
/// the same bytes (the fast kernels are tested equal to the reference ones); the choice only
/// changes speed, and lets the reference kernels be run for debugging.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Kernels {
    /// `tinyq_kernels::fast` on the best instruction set of this CPU (AVX-512 VNNI, else AVX2, on
    /// x86-64 when present).
    #[default]
    Fast,
    /// `tinyq_kernels::fast` on at most AVX2 (the portable path on CPUs without it).
    Avx2,
    /// `tinyq_kernels::fast` on its portable path only.
    Portable,
    /// The reference kernels, TFLM's loop nests one multiply-accumulate at a time.
    Reference,
}

impl Kernels {
    /// The choice named by the environment variable `TINYQ_KERNELS` (`fast`, `avx2`, `portable`
    /// or `reference`); [`Kernels::Fast`] when it is unset or names none of them.
    pub fn from_env() -> Kernels {
        match std::env::var("TINYQ_KERNELS").as_deref() {
            Ok("reference") => Kernels::Reference,
            Ok("avx2") => Kernels::Avx2,
            Ok("portable") => Kernels::Portable,
            _ => Kernels::Fast,
        }
    }
}

/// The values of one tensor during a run, in the tensor's storage type.
#[derive(Clone, Debug, PartialEq)]
pub enum TensorValue {
    I8(Vec<i8>),
    F32(Vec<f32>),
    I32(Vec<i32>),
    /// The activations of 16x8 layers.
    I16(Vec<i16>),
}

impl TensorValue {
    pub fn dtype(&self) -> DType {
        match self {
            TensorValue::I8(_) => DType::I8,
            TensorValue::F32(_) => DType::F32,
            TensorValue::I32(_) => DType::I32,
            TensorValue::I16(_) => DType::I16,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            TensorValue::I8(v) => v.len(),
            TensorValue::F32(v) => v.len(),
            TensorValue::I32(v) => v.len(),
            TensorValue::I16(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn as_i8(&self) -> Option<&[i8]> {
        match self {
            TensorValue::I8(v) => Some(v),
            TensorValue::F32(_) | TensorValue::I32(_) | TensorValue::I16(_) => None,
        }
    }

    pub fn as_i16(&self) -> Option<&[i16]> {
        match self {
            TensorValue::I16(v) => Some(v),
            TensorValue::F32(_) | TensorValue::I32(_) | TensorValue::I8(_) => None,
        }
    }

    pub fn as_f32(&self) -> Option<&[f32]> {
        match self {
            TensorValue::F32(v) => Some(v),
            TensorValue::I8(_) | TensorValue::I32(_) | TensorValue::I16(_) => None,
        }
    }

    pub fn as_i32(&self) -> Option<&[i32]> {
        match self {
            TensorValue::I32(v) => Some(v),
            TensorValue::I8(_) | TensorValue::F32(_) | TensorValue::I16(_) => None,
        }
    }

    /// Zeros of `dtype`, for the dtypes a run can hold.
    fn zeros(dtype: DType, len: usize) -> Option<TensorValue> {
        match dtype {
            DType::I8 => Some(TensorValue::I8(vec![0; len])),
            DType::F32 => Some(TensorValue::F32(vec![0.0; len])),
            DType::I32 => Some(TensorValue::I32(vec![0; len])),
            DType::I16 => Some(TensorValue::I16(vec![0; len])),
            DType::F16 | DType::I4 | DType::U8 | DType::I64 => None,
        }
    }

    fn from_data(data: &TensorData) -> Option<TensorValue> {
        match data {
            TensorData::I8(v) => Some(TensorValue::I8(v.clone())),
            TensorData::F32(v) => Some(TensorValue::F32(v.clone())),
            TensorData::I32(v) => Some(TensorValue::I32(v.clone())),
            TensorData::I16(v) => Some(TensorValue::I16(v.clone())),
            TensorData::F16(_) | TensorData::U8(_) | TensorData::I64(_) => None,
        }
    }
}

/// All tensors computed in one run (graph inputs included, constants excluded), by tensor id.
pub struct Int8Activations {
    pub values: Vec<Option<TensorValue>>,
}

impl Int8Activations {
    pub fn get(&self, t: TensorId) -> Option<&TensorValue> {
        self.values[t].as_ref()
    }
}

/// A graph prepared for integer evaluation. `&Int8Plan` is `Sync`: run samples in parallel.
pub struct Int8Plan {
    graph: Graph,
    steps: Vec<ops::Step>,
    /// Constants a step reads as an ordinary operand (an ADD with a constant side, …), by id.
    consts: Vec<Option<TensorValue>>,
}

impl Int8Plan {
    /// Prepares every node with the kernels [`Kernels::from_env`] names (the fast ones unless
    /// `TINYQ_KERNELS` says otherwise); the error names the node and op that cannot run.
    pub fn new(graph: &Graph) -> Result<Int8Plan, Int8Error> {
        Int8Plan::with_kernels(graph, Kernels::from_env())
    }

    /// Prepares every node with the given kernels.
    pub fn with_kernels(graph: &Graph, kernels: Kernels) -> Result<Int8Plan, Int8Error> {
        graph.validate().map_err(Int8Error::Graph)?;
        for &i in &graph.inputs {
            let t = graph.tensor(i);
            if !matches!(t.dtype, DType::I8 | DType::I16 | DType::F32 | DType::I32) {
                return Err(Int8Error::InputType { name: t.name.clone(), dtype: t.dtype.name() });
            }
        }
        let steps = graph
            .nodes
            .iter()
            .enumerate()
            .map(|(index, _)| ops::prepare(graph, index, kernels))
            .collect::<Result<Vec<_>, _>>()?;
        let mut consts: Vec<Option<TensorValue>> = vec![None; graph.tensors.len()];
        let operands = steps.iter().flat_map(|s| s.inputs.iter()).chain(&graph.outputs);
        for &t in operands {
            if let (None, Some(data)) = (&consts[t], &graph.tensors[t].data) {
                consts[t] = Some(TensorValue::from_data(data).ok_or_else(|| Int8Error::Output {
                    name: graph.tensors[t].name.clone(),
                    msg: format!("a constant {} cannot be returned", data.dtype().name()),
                })?);
            }
        }
        Ok(Int8Plan { graph: graph.clone(), steps, consts })
    }

    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Runs one sample and returns the graph outputs.
    pub fn run(&self, inputs: &[TensorValue]) -> Result<Vec<TensorValue>, Int8Error> {
        let acts = self.run_observed(inputs, &mut |_, _| {})?;
        Ok(self.graph.outputs.iter().map(|&o| self.value(&acts, o).clone()).collect())
    }

    /// Runs one sample, calling `observe` on every graph input and computed tensor in execution
    /// order, and returns all of them. Fails only when `inputs` do not match the graph inputs.
    pub fn run_observed(
        &self,
        inputs: &[TensorValue],
        observe: &mut dyn FnMut(TensorId, &TensorValue),
    ) -> Result<Int8Activations, Int8Error> {
        let g = &self.graph;
        self.check_inputs(inputs, 1)?;
        let mut values: Vec<Option<TensorValue>> = vec![None; g.tensors.len()];
        for (&id, value) in g.inputs.iter().zip(inputs) {
            observe(id, value);
            values[id] = Some(value.clone());
        }
        for step in &self.steps {
            let t = g.tensor(step.output);
            let mut out = TensorValue::zeros(t.dtype, t.numel()).expect("dtype checked in prepare");
            {
                let args: Vec<&TensorValue> = step
                    .inputs
                    .iter()
                    .map(|&i| values[i].as_ref().or(self.consts[i].as_ref()).expect("checked in prepare"))
                    .collect();
                ops::eval(step, &args, &mut out);
            }
            observe(step.output, &out);
            values[step.output] = Some(out);
        }
        Ok(Int8Activations { values })
    }

    /// Fails unless `inputs` match the graph inputs in count and dtype, each holding `samples`
    /// samples.
    fn check_inputs(&self, inputs: &[TensorValue], samples: usize) -> Result<(), Int8Error> {
        let g = &self.graph;
        if inputs.len() != g.inputs.len() {
            return Err(Int8Error::InputCount { expected: g.inputs.len(), got: inputs.len() });
        }
        for (&id, value) in g.inputs.iter().zip(inputs) {
            let t = g.tensor(id);
            if value.dtype() != t.dtype {
                return Err(Int8Error::InputDType {
                    name: t.name.clone(),
                    expected: t.dtype.name(),
                    got: value.dtype().name(),
                });
            }
            if value.len() != t.numel() * samples {
                return Err(Int8Error::InputSize {
                    name: t.name.clone(),
                    shape: t.shape.clone(),
                    expected: t.numel() * samples,
                    got: value.len(),
                });
            }
        }
        Ok(())
    }

    /// The value of `t` in a finished run (computed, input or constant).
    ///
    /// # Panics
    /// If `t` is neither computed in `acts` nor a constant of a supported dtype.
    pub fn value<'a>(&'a self, acts: &'a Int8Activations, t: TensorId) -> &'a TensorValue {
        acts.get(t).or(self.consts[t].as_ref()).expect("tensor computed or constant")
    }
}
