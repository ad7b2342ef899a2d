//! MEAN over any set of axes on int8 (global average pooling in current converter output).
//! Kernel: `tinyq_kernels::mean` (TFLM `reference_ops::QuantizedMeanOrSum`, mean branch).

use tinyq_ir::op;
use tinyq_kernels::mean::{mean_s8, prepare_mean_s8, MeanParams};
use tinyq_kernels::Rounding;

use super::{Ctx, Kernel, Prepared};
use crate::Int8Error;

pub(crate) struct Mean {
    params: MeanParams,
}

pub(crate) fn prepare_mean(ctx: &Ctx<'_>, p: &op::Mean) -> Result<Prepared, Int8Error> {
    ctx.expect_inputs(1..=1)?;
    let x = ctx.input(0)?;
    let axes = p
        .axes
        .iter()
        .map(|&a| i32::try_from(a).map_err(|_| ctx.err(format!("axis {a} is out of range"))))
        .collect::<Result<Vec<_>, _>>()?;
    let params = prepare_mean_s8(&x.shape, &axes, ctx.s8(x)?, ctx.s8(ctx.output())?, Rounding::Double)
        .map_err(ctx.kernel_err())?;
    if params.num_elements_in_axis == 0 {
        return Err(ctx.err("the mean is taken over no elements"));
    }
    ctx.check_output_numel(params.output_size())?;
    Ok((Kernel::Mean(Mean { params }), vec![ctx.input_id(0)]))
}

impl Mean {
    pub fn eval(&self, input: &[i8], output: &mut [i8]) {
        mean_s8(&self.params, input, output);
    }
}
