//! MEAN over any set of axes on int8 or int16 (global average pooling in current converter
//! output). Kernel: `tinyq_kernels::mean` (TFLM `reference_ops::QuantizedMeanOrSum<T, int32_t>`,
//! mean branch, for both types), or its fast form `tinyq_kernels::fast::mean` (same bytes) unless
//! the plan runs the reference kernels. SUM on int8 runs the same kernel with parameters from
//! `prepare_sum_s8` (no division). REDUCE_MAX on int8: `tinyq_kernels::reduce_max`.

use tinyq_ir::op;
use tinyq_kernels::mean::{mean, prepare_mean as prepare_mean_params, prepare_sum_s8, MeanParams};
use tinyq_kernels::{QuantizedInt, Rounding};

use super::{Ctx, Kernel, Prepared};
use crate::Int8Error;

pub(crate) struct Mean {
    params: MeanParams,
    fast: bool,
}

fn axes_i32(ctx: &Ctx<'_>, p: &op::Mean) -> Result<Vec<i32>, Int8Error> {
    p.axes.iter().map(|&a| i32::try_from(a).map_err(|_| ctx.err(format!("axis {a} is out of range")))).collect()
}

/// An int8 SUM: TFLM's MEAN kernel without the division.
pub(crate) fn prepare_sum(ctx: &Ctx<'_>, p: &op::Mean) -> Result<Prepared, Int8Error> {
    ctx.expect_inputs(1..=1)?;
    let (x, out) = (ctx.input(0)?, ctx.output());
    let params = prepare_sum_s8(&x.shape, &axes_i32(ctx, p)?, ctx.s8(x)?, ctx.s8(out)?, Rounding::Double)
        .map_err(ctx.kernel_err())?;
    finish_mean(ctx, params, false)
}

/// An int8 MEAN, or an int16 one (`wide`: int16 input and output, zero points 0, any scales).
pub(crate) fn prepare_mean(ctx: &Ctx<'_>, p: &op::Mean, wide: bool) -> Result<Prepared, Int8Error> {
    ctx.expect_inputs(1..=1)?;
    let (x, out) = (ctx.input(0)?, ctx.output());
    let axes = axes_i32(ctx, p)?;
    let params = if wide {
        prepare_mean_params(&x.shape, &axes, ctx.s16(x)?, ctx.s16(out)?, Rounding::Double)
    } else {
        prepare_mean_params(&x.shape, &axes, ctx.s8(x)?, ctx.s8(out)?, Rounding::Double)
    }
    .map_err(ctx.kernel_err())?;
    finish_mean(ctx, params, wide)
}

fn finish_mean(ctx: &Ctx<'_>, params: MeanParams, wide: bool) -> Result<Prepared, Int8Error> {
    if params.num_elements_in_axis == 0 {
        return Err(ctx.err("the mean is taken over no elements"));
    }
    ctx.check_output_numel(params.output_size())?;
    let mean = Mean { params, fast: ctx.kernels != crate::Kernels::Reference };
    Ok((if wide { Kernel::Mean16(mean) } else { Kernel::Mean(mean) }, vec![ctx.input_id(0)]))
}

impl Mean {
    pub fn eval<T: QuantizedInt>(&self, input: &[T], output: &mut [T]) {
        if self.fast {
            tinyq_kernels::fast::mean::mean(&self.params, input, output);
        } else {
            mean(&self.params, input, output);
        }
    }
}

/// REDUCE_MAX of int8 values; input and output must share their quantization (TFLM checks).
pub(crate) fn prepare_reduce_max(ctx: &Ctx<'_>, p: &op::Mean) -> Result<Prepared, Int8Error> {
    ctx.expect_inputs(1..=1)?;
    ctx.same_qparams_s8()?;
    let axes = axes_i32(ctx, p)?;
    let params =
        tinyq_kernels::reduce_max::prepare_reduce_max(&ctx.input(0)?.shape, &axes).map_err(ctx.kernel_err())?;
    ctx.check_output_numel(params.output_size())?;
    Ok((Kernel::ReduceMax(params), vec![ctx.input_id(0)]))
}

impl Mean {
    pub(crate) fn params(&self) -> &MeanParams {
        &self.params
    }
}
