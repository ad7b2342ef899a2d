//! One module per op family, each with a `prepare_*` that checks a node and builds its
//! [`Kernel`], and an `eval` over the prepared kernel. This module holds the two dispatching
//! matches (exhaustive over [`Op`]) and [`Ctx`], the helpers every prepare shares.

pub(crate) mod activation;
pub(crate) mod binary;
pub(crate) mod conv;
mod conv16;
pub(crate) mod data_movement;
mod fast;
pub(crate) mod fully_connected;
pub(crate) mod pool;
pub(crate) mod quantize;
pub(crate) mod reduce;

use tinyq_ir::{DType, FusedActivation, Graph, Node, Op, Padding, QParams, Tensor, TensorData, TensorId};
use tinyq_kernels::maximum_minimum::MaximumMinimum;
use tinyq_kernels::{KernelError, QParamsS8};

use crate::{Int8Error, TensorValue};

/// A prepared node: its kernel, the tensors it reads at run time (weights and biases live inside
/// the kernel) and the tensor it writes.
pub(crate) struct Step {
    pub kernel: Kernel,
    pub inputs: Vec<TensorId>,
    pub output: TensorId,
}

pub(crate) enum Kernel {
    Conv2D(conv::Conv2D),
    DepthwiseConv2D(conv::DepthwiseConv2D),
    FullyConnected(fully_connected::FullyConnected),
    /// 16x8 layers (int16 activations).
    Conv2D16(conv16::Conv2D16),
    DepthwiseConv2D16(conv16::DepthwiseConv2D16),
    FullyConnected16(conv16::FullyConnected16),
    Binary(binary::Binary),
    /// ADD of int16 tensors.
    Add16(binary::Add16),
    PRelu(binary::PRelu),
    Concat(data_movement::Concat),
    Concat16(data_movement::Concat),
    Reshape,
    Reshape16,
    Transpose(data_movement::Transpose),
    StridedSlice(tinyq_kernels::strided_slice::StridedSliceParams),
    MirrorPad(tinyq_kernels::mirror_pad::MirrorPadParams),
    ResizeBilinear(tinyq_kernels::resize_bilinear::ResizeBilinearParams),
    ResizeNearest(tinyq_kernels::resize_nearest_neighbor::ResizeNearestParams),
    Pad(data_movement::Pad<i8>),
    Pad16(data_movement::Pad<i16>),
    Pool(pool::Pool),
    Pool16(pool::Pool),
    Mean(reduce::Mean),
    Mean16(reduce::Mean),
    ReduceMax(tinyq_kernels::reduce_max::ReduceMaxParams),
    Activation(activation::Activation),
    Quantize(quantize::Quantize),
    Dequantize(quantize::Dequantize),
    /// Nodes the model keeps in float (see `float_ref`).
    FloatConv(crate::float_ref::ConvF32),
    FloatFullyConnected(crate::float_ref::FullyConnectedF32),
    FloatPad(crate::float_ref::PadF32),
    FloatReshape,
    FloatTranspose(crate::float_ref::TransposeF32),
}

/// Prepares node `index` of `graph`.
pub(crate) fn prepare(graph: &Graph, index: usize, kernels: crate::Kernels) -> Result<Step, Int8Error> {
    let node = &graph.nodes[index];
    let ctx = Ctx { graph, node, kernels };
    if node.outputs.len() != 1 {
        return Err(ctx.err(format!("has {} outputs, every op here has exactly one", node.outputs.len())));
    }
    // A node whose data input is float32 is one the model keeps in float.
    let float = node.inputs.first().is_some_and(|&t| graph.tensor(t).dtype == DType::F32);
    // A node whose data input is int16 is a 16x8 layer or an int16 ADD, CONCATENATION, pool, MEAN,
    // RESHAPE or PAD.
    let wide = node.inputs.first().is_some_and(|&t| graph.tensor(t).dtype == DType::I16);
    let (kernel, inputs) = match &node.op {
        Op::Conv2D(p) if float => crate::float_ref::prepare_conv2d_f32(&ctx, p)?,
        Op::DepthwiseConv2D(p) if float => crate::float_ref::prepare_depthwise_conv2d_f32(&ctx, p)?,
        Op::FullyConnected(p) if float => crate::float_ref::prepare_fully_connected_f32(&ctx, p)?,
        Op::Pad(p) if float => crate::float_ref::prepare_pad_f32(&ctx, p)?,
        Op::Reshape if float => crate::float_ref::prepare_reshape_f32(&ctx)?,
        Op::Transpose(p) if float => crate::float_ref::prepare_transpose_f32(&ctx, p)?,
        Op::Conv2D(p) if wide => conv16::prepare_conv2d_16x8(&ctx, p)?,
        Op::DepthwiseConv2D(p) if wide => conv16::prepare_depthwise_conv2d_16x8(&ctx, p)?,
        Op::FullyConnected(p) if wide => conv16::prepare_fully_connected_16x8(&ctx, p)?,
        Op::Conv2D(p) => conv::prepare_conv2d(&ctx, p)?,
        Op::DepthwiseConv2D(p) => conv::prepare_depthwise_conv2d(&ctx, p)?,
        Op::FullyConnected(p) => fully_connected::prepare_fully_connected(&ctx, p)?,
        Op::Add(p) => binary::prepare_binary(&ctx, binary::BinaryOp::Add, p, wide)?,
        Op::Sub(p) => binary::prepare_binary(&ctx, binary::BinaryOp::Sub, p, wide)?,
        Op::Mul(p) => binary::prepare_binary(&ctx, binary::BinaryOp::Mul, p, wide)?,
        Op::Maximum => binary::prepare_maximum_minimum(&ctx, MaximumMinimum::Maximum)?,
        Op::Minimum => binary::prepare_maximum_minimum(&ctx, MaximumMinimum::Minimum)?,
        Op::Concat(p) => data_movement::prepare_concat(&ctx, p, wide)?,
        Op::Reshape => data_movement::prepare_reshape(&ctx, wide)?,
        Op::Transpose(p) => data_movement::prepare_transpose(&ctx, p)?,
        Op::StridedSlice(p) => data_movement::prepare_strided_slice(&ctx, p)?,
        Op::MirrorPad(p) => data_movement::prepare_mirror_pad(&ctx, p)?,
        Op::ResizeBilinear(p) => data_movement::prepare_resize_bilinear(&ctx, p)?,
        Op::Pad(p) => data_movement::prepare_pad(&ctx, p, wide)?,
        Op::ResizeNearest(p) => data_movement::prepare_resize_nearest(&ctx, p)?,
        Op::MaxPool2D(p) => pool::prepare_pool(&ctx, pool::PoolKind::Max, p, wide)?,
        Op::AvgPool2D(p) => pool::prepare_pool(&ctx, pool::PoolKind::Average, p, wide)?,
        Op::Mean(p) => reduce::prepare_mean(&ctx, p, wide)?,
        Op::ReduceMax(p) => reduce::prepare_reduce_max(&ctx, p)?,
        Op::ReduceSum(p) => reduce::prepare_sum(&ctx, p)?,
        Op::Relu => activation::prepare_relu(&ctx)?,
        Op::Relu6 => activation::prepare_relu6(&ctx)?,
        Op::Clip(p) => activation::prepare_clip(&ctx, p)?,
        Op::LeakyRelu(p) => activation::prepare_leaky_relu(&ctx, p)?,
        Op::PRelu => binary::prepare_prelu(&ctx)?,
        Op::Elu => activation::prepare_elu(&ctx)?,
        Op::Abs => activation::prepare_abs(&ctx)?,
        Op::Sigmoid => activation::prepare_logistic(&ctx)?,
        Op::Tanh => activation::prepare_tanh(&ctx)?,
        Op::HardSwish => activation::prepare_hard_swish(&ctx)?,
        Op::Softmax(p) => activation::prepare_softmax(&ctx, p)?,
        Op::LogSoftmax => activation::prepare_log_softmax(&ctx)?,
        Op::Quantize => quantize::prepare_quantize(&ctx)?,
        Op::Dequantize => quantize::prepare_dequantize(&ctx)?,
    };
    Ok(Step { kernel, inputs, output: node.outputs[0] })
}

/// Runs one prepared step. `args` follow `step.inputs`; `out` has the output's dtype and size.
pub(crate) fn eval(step: &Step, args: &[&TensorValue], out: &mut TensorValue) {
    match &step.kernel {
        Kernel::Conv2D(k) => k.eval(s8(args[0]), s8_mut(out)),
        Kernel::DepthwiseConv2D(k) => k.eval(s8(args[0]), s8_mut(out)),
        Kernel::FullyConnected(k) => k.eval(s8(args[0]), s8_mut(out)),
        Kernel::Conv2D16(k) => k.eval(s16(args[0]), s16_mut(out)),
        Kernel::DepthwiseConv2D16(k) => k.eval(s16(args[0]), s16_mut(out)),
        Kernel::FullyConnected16(k) => k.eval(s16(args[0]), s16_mut(out)),
        Kernel::Binary(k) => k.eval(s8(args[0]), s8(args[1]), s8_mut(out)),
        Kernel::Add16(k) => k.eval(s16(args[0]), s16(args[1]), s16_mut(out)),
        Kernel::PRelu(k) => k.eval(s8(args[0]), s8(args[1]), s8_mut(out)),
        Kernel::Concat(k) => {
            let inputs: Vec<&[i8]> = args.iter().map(|a| s8(a)).collect();
            k.eval(&inputs, s8_mut(out))
        }
        Kernel::Concat16(k) => {
            let inputs: Vec<&[i16]> = args.iter().map(|a| s16(a)).collect();
            k.eval(&inputs, s16_mut(out))
        }
        Kernel::Reshape => tinyq_kernels::reshape::reshape(s8(args[0]), s8_mut(out)),
        Kernel::Reshape16 => tinyq_kernels::reshape::reshape(s16(args[0]), s16_mut(out)),
        Kernel::Transpose(k) => k.eval(s8(args[0]), s8_mut(out)),
        Kernel::StridedSlice(p) => tinyq_kernels::strided_slice::strided_slice(p, s8(args[0]), s8_mut(out)),
        Kernel::MirrorPad(p) => tinyq_kernels::mirror_pad::mirror_pad(p, s8(args[0]), s8_mut(out)),
        Kernel::ResizeBilinear(p) => tinyq_kernels::resize_bilinear::resize_bilinear_s8(p, s8(args[0]), s8_mut(out)),
        Kernel::ResizeNearest(p) => {
            tinyq_kernels::resize_nearest_neighbor::resize_nearest_neighbor(p, s8(args[0]), s8_mut(out))
        }
        Kernel::Pad(k) => k.eval(s8(args[0]), s8_mut(out)),
        Kernel::Pad16(k) => k.eval(s16(args[0]), s16_mut(out)),
        Kernel::Pool(k) => k.eval(s8(args[0]), s8_mut(out)),
        Kernel::Pool16(k) => k.eval(s16(args[0]), s16_mut(out)),
        Kernel::Mean(k) => k.eval(s8(args[0]), s8_mut(out)),
        Kernel::Mean16(k) => k.eval(s16(args[0]), s16_mut(out)),
        Kernel::ReduceMax(p) => tinyq_kernels::reduce_max::reduce_max_s8(p, s8(args[0]), s8_mut(out)),
        Kernel::Activation(k) => k.eval(s8(args[0]), s8_mut(out)),
        Kernel::Quantize(k) => k.eval(args[0], out),
        Kernel::Dequantize(k) => k.eval(s8(args[0]), f32_mut(out)),
        Kernel::FloatConv(k) => k.eval(f32s(args[0]), f32_mut(out)),
        Kernel::FloatFullyConnected(k) => k.eval(f32s(args[0]), f32_mut(out)),
        Kernel::FloatPad(k) => k.eval(f32s(args[0]), f32_mut(out)),
        Kernel::FloatReshape => crate::float_ref::reshape_f32(f32s(args[0]), f32_mut(out)),
        Kernel::FloatTranspose(k) => k.eval(f32s(args[0]), f32_mut(out)),
    }
}

impl Kernel {
    /// Whether [`eval`] computes several samples in one call when every operand holds them back
    /// to back: the conv-like kernels (their GEMM rows span the samples), elementwise and
    /// row-wise kernels. The others run one sample at a time in a batch.
    pub(crate) fn takes_many_samples(&self) -> bool {
        match self {
            Kernel::Conv2D(_) | Kernel::DepthwiseConv2D(_) | Kernel::FullyConnected(_) => true,
            Kernel::Binary(k) => k.elementwise(),
            Kernel::Add16(k) => k.elementwise(),
            Kernel::Reshape | Kernel::Reshape16 | Kernel::FloatReshape => true,
            Kernel::Activation(_) | Kernel::Quantize(_) | Kernel::Dequantize(_) => true,
            Kernel::Conv2D16(_) | Kernel::DepthwiseConv2D16(_) | Kernel::FullyConnected16(_) => false,
            Kernel::Concat(_) | Kernel::Concat16(_) | Kernel::Transpose(_) | Kernel::Pad(_) | Kernel::Pad16(_) => false,
            Kernel::Pool(k) | Kernel::Pool16(k) => k.fast.is_some(),
            Kernel::Mean(_) | Kernel::Mean16(_) | Kernel::ReduceMax(_) => false,
            Kernel::PRelu(_)
            | Kernel::ResizeNearest(_)
            | Kernel::StridedSlice(_)
            | Kernel::MirrorPad(_)
            | Kernel::ResizeBilinear(_) => false,
            Kernel::FloatConv(_) | Kernel::FloatFullyConnected(_) | Kernel::FloatPad(_) | Kernel::FloatTranspose(_) => {
                false
            }
        }
    }
}

fn s8(v: &TensorValue) -> &[i8] {
    v.as_i8().expect("int8 operand checked in prepare")
}

fn f32s(v: &TensorValue) -> &[f32] {
    v.as_f32().expect("float32 operand checked in prepare")
}

fn s16(v: &TensorValue) -> &[i16] {
    v.as_i16().expect("int16 operand checked in prepare")
}

fn s8_mut(v: &mut TensorValue) -> &mut [i8] {
    match v {
        TensorValue::I8(v) => v,
        TensorValue::F32(_) | TensorValue::I32(_) | TensorValue::I16(_) => {
            unreachable!("int8 output checked in prepare")
        }
    }
}

fn s16_mut(v: &mut TensorValue) -> &mut [i16] {
    match v {
        TensorValue::I16(v) => v,
        TensorValue::F32(_) | TensorValue::I32(_) | TensorValue::I8(_) => {
            unreachable!("int16 output checked in prepare")
        }
    }
}

fn f32_mut(v: &mut TensorValue) -> &mut [f32] {
    match v {
        TensorValue::F32(v) => v,
        TensorValue::I8(_) | TensorValue::I32(_) | TensorValue::I16(_) => {
            unreachable!("float32 output checked in prepare")
        }
    }
}

/// What a prepare function returns: the kernel and the tensors it reads at run time.
pub(crate) type Prepared = (Kernel, Vec<TensorId>);

/// The node being prepared, with the checks and conversions every op family needs.
pub(crate) struct Ctx<'a> {
    pub graph: &'a Graph,
    pub node: &'a Node,
    /// Which int8 kernels the plan runs.
    pub kernels: crate::Kernels,
}

impl<'a> Ctx<'a> {
    pub fn err(&self, msg: impl Into<String>) -> Int8Error {
        Int8Error::Node { node: self.node.name.clone(), op: self.node.op.name(), msg: msg.into() }
    }

    pub fn kernel_err(&self) -> impl FnOnce(KernelError) -> Int8Error + '_ {
        |error| Int8Error::Kernel { node: self.node.name.clone(), op: self.node.op.name(), error }
    }

    pub fn input(&self, k: usize) -> Result<&'a Tensor, Int8Error> {
        let id = *self.node.inputs.get(k).ok_or_else(|| self.err(format!("input {k} is missing")))?;
        Ok(self.graph.tensor(id))
    }

    pub fn input_id(&self, k: usize) -> TensorId {
        self.node.inputs[k]
    }

    pub fn output(&self) -> &'a Tensor {
        self.graph.tensor(self.node.outputs[0])
    }

    pub fn expect_inputs(&self, range: std::ops::RangeInclusive<usize>) -> Result<(), Int8Error> {
        let n = self.node.inputs.len();
        if range.contains(&n) {
            Ok(())
        } else {
            Err(self.err(format!("has {n} inputs, expects {} to {}", range.start(), range.end())))
        }
    }

    /// Per-tensor quantization of an int8 tensor.
    pub fn s8(&self, t: &Tensor) -> Result<QParamsS8, Int8Error> {
        if t.dtype != DType::I8 {
            return Err(self.err(format!("tensor `{}` is {}, expected int8", t.name, t.dtype.name())));
        }
        let q = self.qparams(t)?;
        match (&q.scale[..], &q.zero_point[..]) {
            ([scale], [zero_point]) => Ok(QParamsS8::new(*scale, *zero_point)),
            _ => Err(self.err(format!(
                "tensor `{}` needs per-tensor quantization, has {} scales and {} zero points",
                t.name,
                q.scale.len(),
                q.zero_point.len()
            ))),
        }
    }

    /// Per-tensor quantization of an int16 activation (zero point checked by the kernels).
    pub fn s16(&self, t: &Tensor) -> Result<tinyq_kernels::conv16::QParamsS16, Int8Error> {
        if t.dtype != DType::I16 {
            return Err(self.err(format!("tensor `{}` is {}, expected int16", t.name, t.dtype.name())));
        }
        let q = self.qparams(t)?;
        match (&q.scale[..], &q.zero_point[..]) {
            ([scale], [zero_point]) => Ok(tinyq_kernels::conv16::QParamsS16 { scale: *scale, zero_point: *zero_point }),
            _ => Err(self.err(format!(
                "int16 tensor `{}` needs per-tensor quantization, has {} scales",
                t.name,
                q.scale.len()
            ))),
        }
    }

    /// The optional int64 bias of a 16x8 layer at input `k` with `channels` entries.
    pub fn bias_i64(&self, k: usize, channels: usize) -> Result<Option<Vec<i64>>, Int8Error> {
        let Some(&id) = self.node.inputs.get(k) else { return Ok(None) };
        let t = self.graph.tensor(id);
        match &t.data {
            Some(TensorData::I64(v)) if v.len() == channels => Ok(Some(v.clone())),
            Some(TensorData::I64(v)) => {
                Err(self.err(format!("bias `{}` has {} values, expected {channels}", t.name, v.len())))
            }
            _ => Err(self.err(format!(
                "bias `{}` of a 16x8 layer must be a constant int64 tensor, is {}",
                t.name,
                describe(t)
            ))),
        }
    }

    pub fn qparams(&self, t: &'a Tensor) -> Result<&'a QParams, Int8Error> {
        t.qparams.as_ref().ok_or_else(|| self.err(format!("tensor `{}` has no quantization parameters", t.name)))
    }

    /// Scales and zero points of int8 weights with `channels` channels along `axis`: one pair
    /// (per-tensor) or one per channel, quantized along `axis`.
    pub fn weight_qparams(&self, w: &'a Tensor, axis: usize, channels: usize) -> Result<&'a QParams, Int8Error> {
        self.const_i8(w)?;
        let q = self.qparams(w)?;
        if q.scale.len() != q.zero_point.len() {
            return Err(self.err(format!(
                "weights `{}` have {} scales but {} zero points",
                w.name,
                q.scale.len(),
                q.zero_point.len()
            )));
        }
        if q.scale.len() != 1 && q.scale.len() != channels {
            return Err(self.err(format!(
                "weights `{}` have {} scales, expected 1 or {channels} (one per channel)",
                w.name,
                q.scale.len()
            )));
        }
        if q.scale.len() > 1 && q.axis != Some(axis) {
            return Err(self.err(format!(
                "weights `{}` are quantized along axis {:?}, the kernel needs axis {axis}",
                w.name, q.axis
            )));
        }
        Ok(q)
    }

    /// Fails when weights `w` are int4, which TFLM's kernels do not take with `what`.
    pub fn not_int4(&self, w: &Tensor, what: &str) -> Result<(), Int8Error> {
        if w.dtype == DType::I4 {
            return Err(self.err(format!("int4 weights `{}` are not supported with {what} (TFLM runs int4 weights only per tensor in fully connected layers, and only with int8 activations)", w.name)));
        }
        Ok(())
    }

    /// The values of constant int8 weights, or of int4 weights as the int8 filter TFLM's
    /// reference kernels unpack them into at Prepare (the IR holds int4 values unpacked).
    pub fn const_i8(&self, t: &'a Tensor) -> Result<&'a [i8], Int8Error> {
        match &t.data {
            Some(TensorData::I8(v)) => Ok(v),
            _ => Err(self.err(format!("`{}` must be a constant int8 tensor, is {}", t.name, describe(t)))),
        }
    }

    /// The optional int32 bias at input `k` with `channels` entries.
    pub fn bias(&self, k: usize, channels: usize) -> Result<Option<Vec<i32>>, Int8Error> {
        let Some(&id) = self.node.inputs.get(k) else { return Ok(None) };
        let t = self.graph.tensor(id);
        match &t.data {
            Some(TensorData::I32(v)) if v.len() == channels => Ok(Some(v.clone())),
            Some(TensorData::I32(v)) => {
                Err(self.err(format!("bias `{}` has {} values, expected {channels}", t.name, v.len())))
            }
            _ => Err(self.err(format!("bias `{}` must be a constant int32 tensor, is {}", t.name, describe(t)))),
        }
    }

    pub fn nhwc(&self, t: &Tensor) -> Result<[usize; 4], Int8Error> {
        t.shape
            .as_slice()
            .try_into()
            .map_err(|_| self.err(format!("tensor `{}` has shape {:?}, expected 4-D", t.name, t.shape)))
    }

    pub fn padding(&self, p: Padding) -> Result<tinyq_kernels::Padding, Int8Error> {
        match p {
            Padding::Same => Ok(tinyq_kernels::Padding::Same),
            Padding::Valid => Ok(tinyq_kernels::Padding::Valid),
            Padding::Explicit { .. } => {
                Err(self.err("explicit padding is not a TFLite padding; lower it to PAD + VALID first"))
            }
        }
    }

    pub fn check_output_shape(&self, computed: &[usize]) -> Result<(), Int8Error> {
        let out = self.output();
        if out.shape != computed {
            return Err(
                self.err(format!("output `{}` has shape {:?}, the kernel computes {computed:?}", out.name, out.shape))
            );
        }
        Ok(())
    }

    pub fn check_output_numel(&self, computed: usize) -> Result<(), Int8Error> {
        let out = self.output();
        if out.numel() != computed {
            return Err(self.err(format!(
                "output `{}` has {} elements, the kernel computes {computed}",
                out.name,
                out.numel()
            )));
        }
        Ok(())
    }

    /// Input 0 and the output: int8 with identical quantization, as data-movement ops need.
    pub fn same_qparams_s8(&self) -> Result<QParamsS8, Int8Error> {
        let input = self.s8(self.input(0)?)?;
        let output = self.s8(self.output())?;
        tinyq_kernels::check_same_qparams_s8("output", output, input).map_err(self.kernel_err())?;
        Ok(output)
    }

    /// Input 0 and the output: int16 with identical quantization and zero point 0, as the int16
    /// data-movement ops (`what`) need.
    pub fn same_qparams_s16(&self, what: &str) -> Result<tinyq_kernels::QParamsS16, Int8Error> {
        let (input, output) = (self.s16(self.input(0)?)?, self.s16(self.output())?);
        if input.scale.to_bits() != output.scale.to_bits() || input.zero_point != 0 || output.zero_point != 0 {
            return Err(
                self.err(format!("an int16 {what} needs the same quantization on input and output, with zero point 0"))
            );
        }
        Ok(output)
    }
}

pub(crate) fn activation(a: FusedActivation) -> tinyq_kernels::FusedActivation {
    match a {
        FusedActivation::None => tinyq_kernels::FusedActivation::None,
        FusedActivation::Relu => tinyq_kernels::FusedActivation::Relu,
        FusedActivation::Relu6 => tinyq_kernels::FusedActivation::Relu6,
        FusedActivation::ReluN1To1 => tinyq_kernels::FusedActivation::ReluN1To1,
    }
}

fn describe(t: &Tensor) -> String {
    match &t.data {
        Some(d) => format!("a constant {}", d.dtype().name()),
        None => format!("a computed {} tensor", t.dtype.name()),
    }
}
