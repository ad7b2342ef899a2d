//! ADD, SUB and MUL of two int8 tensors with numpy broadcasting. Kernels: `tinyq_kernels::add`,
//! `sub`, `mul` (TFLM `reference_integer_ops::AddFunc`/`MulElementwise` and their 6-D broadcast
//! variants). Same-shaped inputs take the elementwise path, as in TFLM.

use tinyq_ir::op;
use tinyq_kernels::add::{add_s8, broadcast_add_s8, prepare_add, AddParams};
use tinyq_kernels::mul::{broadcast_mul_s8, mul_s8, prepare_mul, MulParams};
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
}

enum Params {
    Add(AddParams),
    Sub(AddParams),
    Mul(MulParams),
}

pub(crate) fn prepare_binary(ctx: &Ctx<'_>, which: BinaryOp, p: &op::Binary) -> Result<Prepared, Int8Error> {
    ctx.expect_inputs(2..=2)?;
    let (a, b, out) = (ctx.input(0)?, ctx.input(1)?, ctx.output());
    let (qa, qb, qo) = (ctx.s8(a)?, ctx.s8(b)?, ctx.s8(out)?);
    let act = activation(p.activation);
    let params = match which {
        BinaryOp::Add => Params::Add(prepare_add(qa, qb, qo, act, Rounding::Double).map_err(ctx.kernel_err())?),
        BinaryOp::Sub => Params::Sub(prepare_sub(qa, qb, qo, act, Rounding::Double).map_err(ctx.kernel_err())?),
        BinaryOp::Mul => Params::Mul(prepare_mul(qa, qb, qo, act, Rounding::Double).map_err(ctx.kernel_err())?),
    };
    let broadcast = if a.shape == out.shape && b.shape == out.shape {
        None
    } else {
        let shapes = BroadcastShapes::new(&a.shape, &b.shape).map_err(ctx.kernel_err())?;
        ctx.check_output_shape(shapes.output_shape())?;
        Some(shapes)
    };
    Ok((Kernel::Binary(Binary { params, broadcast }), vec![ctx.input_id(0), ctx.input_id(1)]))
}

impl Binary {
    pub fn eval(&self, a: &[i8], b: &[i8], output: &mut [i8]) {
        match (&self.params, &self.broadcast) {
            (Params::Add(p), None) => add_s8(p, a, b, output),
            (Params::Add(p), Some(s)) => broadcast_add_s8(p, s, a, b, output),
            (Params::Sub(p), None) => sub_s8(p, a, b, output),
            (Params::Sub(p), Some(s)) => broadcast_sub_s8(p, s, a, b, output),
            (Params::Mul(p), None) => mul_s8(p, a, b, output),
            (Params::Mul(p), Some(s)) => broadcast_mul_s8(p, s, a, b, output),
        }
    }
}
