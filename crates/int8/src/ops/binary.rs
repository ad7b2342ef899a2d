//! ADD, SUB, MUL, MAXIMUM and MINIMUM of two int8 tensors, and ADD of two int16 tensors, with
//! numpy broadcasting. Kernels: `tinyq_kernels::add`, `sub`, `mul`, `maximum_minimum` (TFLM
//! `reference_integer_ops::AddFunc`/`MulElementwise`, `reference_ops::AddGeneralParamScale` for
//! int16, `MaximumMinimumBroadcastSlow`, and their broadcast variants). Same-shaped inputs take the elementwise path, as in TFLM. SUB and MUL of int16
//! tensors are refused. An elementwise int8 ADD runs `tinyq_kernels::fast::add::AddFast`
//! (bit-identical) unless the plan runs the reference kernels.

use tinyq_ir::{op, Tensor};
use tinyq_kernels::add::{add, broadcast_add, prepare_add, AddParams};
use tinyq_kernels::fast::add::AddFast;
use tinyq_kernels::maximum_minimum::{broadcast_maximum_minimum_s8, maximum_minimum_s8, MaximumMinimum};
use tinyq_kernels::mul::{broadcast_mul_s8, mul_s8, prepare_mul, MulParams};
use tinyq_kernels::prelu::{prelu_s8, prepare_prelu_s8, PreluParams};
use tinyq_kernels::sub::{broadcast_sub_s8, prepare_sub, sub_s8};
use tinyq_kernels::{BroadcastShapes, Rounding};

use super::{activation, Ctx, Kernel, Prepared};
use crate::Int8Error;

#[derive(Clone, Copy)]
pub(crate) enum BinaryOp {
    Add,
    Sub,
    Mul,
}

pub(crate) struct Binary {
    params: Params,
    /// `None` when both inputs have the output's shape.
    broadcast: Option<BroadcastShapes>,
    /// The fast kernel of an elementwise ADD.
    fast: Option<AddFast>,
}

/// ADD of two int16 tensors (left shift 15, int16 activation range).
pub(crate) struct Add16 {
    params: AddParams,
    /// `None` when both inputs have the output's shape.
    broadcast: Option<BroadcastShapes>,
}

enum Params {
    Add(AddParams),
    Sub(AddParams),
    Mul(MulParams),
    MaximumMinimum(MaximumMinimum),
}

/// An int8 ADD, SUB or MUL, or (`wide`) an int16 ADD; int16 SUB and MUL are refused.
pub(crate) fn prepare_binary(
    ctx: &Ctx<'_>,
    which: BinaryOp,
    p: &op::Binary,
    wide: bool,
) -> Result<Prepared, Int8Error> {
    ctx.expect_inputs(2..=2)?;
    let (a, b, out) = (ctx.input(0)?, ctx.input(1)?, ctx.output());
    let act = activation(p.activation);
    let kernel = if wide {
        if !matches!(which, BinaryOp::Add) {
            return Err(ctx.err("int16 inputs are supported for ADD only; this op needs int8 tensors"));
        }
        let params =
            prepare_add(ctx.s16(a)?, ctx.s16(b)?, ctx.s16(out)?, act, Rounding::Double).map_err(ctx.kernel_err())?;
        Kernel::Add16(Add16 { params, broadcast: broadcast_shapes(ctx, a, b, out)? })
    } else {
        let (qa, qb, qo) = (ctx.s8(a)?, ctx.s8(b)?, ctx.s8(out)?);
        let params = match which {
            BinaryOp::Add => Params::Add(prepare_add(qa, qb, qo, act, Rounding::Double).map_err(ctx.kernel_err())?),
            BinaryOp::Sub => Params::Sub(prepare_sub(qa, qb, qo, act, Rounding::Double).map_err(ctx.kernel_err())?),
            BinaryOp::Mul => Params::Mul(prepare_mul(qa, qb, qo, act, Rounding::Double).map_err(ctx.kernel_err())?),
        };
        let broadcast = broadcast_shapes(ctx, a, b, out)?;
        let fast = match (&params, &broadcast, super::fast::isa(ctx.kernels)) {
            (Params::Add(p), None, Some(isa)) => AddFast::new(p, isa),
            _ => None,
        };
        Kernel::Binary(Binary { params, broadcast, fast })
    };
    Ok((kernel, vec![ctx.input_id(0), ctx.input_id(1)]))
}

/// An int8 MAXIMUM or MINIMUM. TFLM has no Prepare for them and compares stored values, whatever
/// the tensors' parameters say; quantization gives the inputs and the output the same ones.
pub(crate) fn prepare_maximum_minimum(ctx: &Ctx<'_>, which: MaximumMinimum) -> Result<Prepared, Int8Error> {
    ctx.expect_inputs(2..=2)?;
    let (a, b, out) = (ctx.input(0)?, ctx.input(1)?, ctx.output());
    ctx.s8(a)?;
    ctx.s8(b)?;
    ctx.s8(out)?;
    let broadcast = broadcast_shapes(ctx, a, b, out)?;
    let kernel = Binary { params: Params::MaximumMinimum(which), broadcast, fast: None };
    Ok((Kernel::Binary(kernel), vec![ctx.input_id(0), ctx.input_id(1)]))
}

/// `None` when both inputs have the output's shape (TFLM's elementwise path), else the broadcast
/// of the two input shapes, which must be the output's.
fn broadcast_shapes(ctx: &Ctx<'_>, a: &Tensor, b: &Tensor, out: &Tensor) -> Result<Option<BroadcastShapes>, Int8Error> {
    if a.shape == out.shape && b.shape == out.shape {
        return Ok(None);
    }
    let shapes = BroadcastShapes::new(&a.shape, &b.shape).map_err(ctx.kernel_err())?;
    ctx.check_output_shape(shapes.output_shape())?;
    Ok(Some(shapes))
}

/// PRELU of an int8 input with an int8 slope broadcast against it (TFLM's broadcast kernel for
/// every shape).
pub(crate) struct PRelu {
    params: PreluParams,
    shapes: BroadcastShapes,
}

pub(crate) fn prepare_prelu(ctx: &Ctx<'_>) -> Result<Prepared, Int8Error> {
    ctx.expect_inputs(2..=2)?;
    let (x, alpha, out) = (ctx.input(0)?, ctx.input(1)?, ctx.output());
    let params =
        prepare_prelu_s8(ctx.s8(x)?, ctx.s8(alpha)?, ctx.s8(out)?, Rounding::Double).map_err(ctx.kernel_err())?;
    let shapes = BroadcastShapes::new(&x.shape, &alpha.shape).map_err(ctx.kernel_err())?;
    ctx.check_output_shape(shapes.output_shape())?;
    Ok((Kernel::PRelu(PRelu { params, shapes }), vec![ctx.input_id(0), ctx.input_id(1)]))
}

impl PRelu {
    pub fn eval(&self, x: &[i8], alpha: &[i8], output: &mut [i8]) {
        prelu_s8(&self.params, &self.shapes, x, alpha, output)
    }
}

impl Add16 {
    /// Both inputs have the output's shape.
    pub fn elementwise(&self) -> bool {
        self.broadcast.is_none()
    }

    pub fn eval(&self, a: &[i16], b: &[i16], output: &mut [i16]) {
        match &self.broadcast {
            None => add(&self.params, a, b, output),
            Some(s) => broadcast_add(&self.params, s, a, b, output),
        }
    }
}

impl Binary {
    /// Both inputs have the output's shape.
    pub fn elementwise(&self) -> bool {
        self.broadcast.is_none()
    }

    pub fn eval(&self, a: &[i8], b: &[i8], output: &mut [i8]) {
        if let Some(fast) = &self.fast {
            return fast.eval(a, b, output);
        }
        match (&self.params, &self.broadcast) {
            (Params::Add(p), None) => add(p, a, b, output),
            (Params::Add(p), Some(s)) => broadcast_add(p, s, a, b, output),
            (Params::Sub(p), None) => sub_s8(p, a, b, output),
            (Params::Sub(p), Some(s)) => broadcast_sub_s8(p, s, a, b, output),
            (Params::Mul(p), None) => mul_s8(p, a, b, output),
            (Params::Mul(p), Some(s)) => broadcast_mul_s8(p, s, a, b, output),
            (Params::MaximumMinimum(w), None) => maximum_minimum_s8(*w, a, b, output),
            (Params::MaximumMinimum(w), Some(s)) => broadcast_maximum_minimum_s8(*w, s, a, b, output),
        }
    }
}

impl Binary {
    pub(crate) fn view(&self) -> crate::StepKind<'_> {
        let broadcast = self.broadcast.is_some();
        match &self.params {
            Params::Add(params) => crate::StepKind::Add { params, broadcast },
            Params::Sub(params) => crate::StepKind::Sub { params, broadcast },
            Params::Mul(params) => crate::StepKind::Mul { params, broadcast },
            Params::MaximumMinimum(MaximumMinimum::Maximum) => crate::StepKind::Other("MAXIMUM"),
            Params::MaximumMinimum(MaximumMinimum::Minimum) => crate::StepKind::Other("MINIMUM"),
        }
    }
}
