//! MAX_POOL_2D and AVERAGE_POOL_2D on int8 NHWC. TFLM requires the output to keep the input's
//! quantization, so neither rescales. Kernels: `tinyq_kernels::{max_pool, average_pool}` (TFLM
//! `reference_integer_ops::MaxPool` / `AveragePool`).

use tinyq_ir::op;
use tinyq_kernels::average_pool::average_pool_s8;
use tinyq_kernels::max_pool::max_pool_s8;
use tinyq_kernels::pooling::{prepare_pool_s8, PoolOptions, PoolParams};

use super::{activation, Ctx, Kernel, Prepared};
use crate::Int8Error;

#[derive(Clone, Copy)]
pub(crate) enum PoolKind {
    Max,
    Average,
}

pub(crate) struct Pool {
    kind: PoolKind,
    params: PoolParams,
}

pub(crate) fn prepare_pool(ctx: &Ctx<'_>, kind: PoolKind, p: &op::Pool2D) -> Result<Prepared, Int8Error> {
    ctx.expect_inputs(1..=1)?;
    let x = ctx.input(0)?;
    let options = PoolOptions {
        padding: ctx.padding(p.padding)?,
        stride_height: p.stride[0],
        stride_width: p.stride[1],
        filter_height: p.filter[0],
        filter_width: p.filter[1],
        activation: activation(p.activation),
    };
    let params =
        prepare_pool_s8(ctx.nhwc(x)?, &options, ctx.s8(x)?, ctx.s8(ctx.output())?).map_err(ctx.kernel_err())?;
    ctx.check_output_shape(&params.output_shape)?;
    Ok((Kernel::Pool(Pool { kind, params }), vec![ctx.input_id(0)]))
}

impl Pool {
    pub fn eval(&self, input: &[i8], output: &mut [i8]) {
        match self.kind {
            PoolKind::Max => max_pool_s8(&self.params, input, output),
            PoolKind::Average => average_pool_s8(&self.params, input, output),
        }
    }
}
