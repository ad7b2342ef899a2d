//! MAX_POOL_2D and AVERAGE_POOL_2D on int8 or int16 NHWC. TFLM requires the output to keep the
//! input's quantization, so neither rescales. Kernels: `tinyq_kernels::{max_pool, average_pool}`
//! (TFLM `reference_integer_ops::MaxPool` / `AveragePool`, int8 and int16 overloads), or their
//! fast forms in `tinyq_kernels::fast::pool` (same bytes) unless the plan runs the reference
//! kernels.

use tinyq_ir::op;
use tinyq_kernels::average_pool::average_pool;
use tinyq_kernels::max_pool::max_pool;
use tinyq_kernels::pooling::{prepare_pool as prepare_pool_params, PoolOptions, PoolParams};
use tinyq_kernels::QuantizedInt;

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
    /// The fast kernels' path, which also take many samples per call; `None` for the reference
    /// kernels.
    pub fast: Option<tinyq_kernels::fast::Isa>,
}

/// An int8 pool, or an int16 one (`wide`: input and output int16 with the same scale, zero
/// point 0).
pub(crate) fn prepare_pool(ctx: &Ctx<'_>, kind: PoolKind, p: &op::Pool2D, wide: bool) -> Result<Prepared, Int8Error> {
    ctx.expect_inputs(1..=1)?;
    let (x, out) = (ctx.input(0)?, ctx.output());
    let (shape, options) = (ctx.nhwc(x)?, options(ctx, p)?);
    let params = if wide {
        prepare_pool_params(shape, &options, ctx.s16(x)?, ctx.s16(out)?)
    } else {
        prepare_pool_params(shape, &options, ctx.s8(x)?, ctx.s8(out)?)
    }
    .map_err(ctx.kernel_err())?;
    ctx.check_output_shape(&params.output_shape)?;
    let pool = Pool { kind, params, fast: super::fast::isa(ctx.kernels) };
    Ok((if wide { Kernel::Pool16(pool) } else { Kernel::Pool(pool) }, vec![ctx.input_id(0)]))
}

fn options(ctx: &Ctx<'_>, p: &op::Pool2D) -> Result<PoolOptions, Int8Error> {
    Ok(PoolOptions {
        padding: ctx.padding(p.padding)?,
        stride_height: p.stride[0],
        stride_width: p.stride[1],
        filter_height: p.filter[0],
        filter_width: p.filter[1],
        activation: activation(p.activation),
    })
}

impl Pool {
    pub fn eval<T: QuantizedInt>(&self, input: &[T], output: &mut [T]) {
        use tinyq_kernels::fast::pool as fast;
        match (self.kind, self.fast) {
            (PoolKind::Max, Some(isa)) => fast::max_pool(isa, &self.params, input, output),
            (PoolKind::Average, Some(isa)) => fast::average_pool(isa, &self.params, input, output),
            (PoolKind::Max, None) => max_pool(&self.params, input, output),
            (PoolKind::Average, None) => average_pool(&self.params, input, output),
        }
    }
}

impl Pool {
    pub(crate) fn view(&self) -> crate::StepKind<'_> {
        match self.kind {
            PoolKind::Max => crate::StepKind::MaxPool(&self.params),
            PoolKind::Average => crate::StepKind::AveragePool(&self.params),
        }
    }
}
