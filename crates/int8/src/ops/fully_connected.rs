//! FULLY_CONNECTED: int8 input viewed as `[batches, depth]`, int8 weights `[units, depth]`
//! quantized per tensor (any zero point; the scale product taken in f32, as TFLM does) or per
//! unit along axis 0 (zero points 0), optional int32 bias. Int4 weights run as the int8 filter
//! they unpack into, per tensor only (TFLM's int4 kernel has no per-channel form). Kernels:
//! `tinyq_kernels::fully_connected::{fully_connected, fully_connected_per_channel}` (TFLM
//! `reference_integer_ops::FullyConnected` / `FullyConnectedPerChannel`). TFLM picks the
//! per-channel kernel exactly when the weights carry more than one scale; so does this. Unless the
//! plan runs the reference kernels, `tinyq_kernels::fast::fully_connected::FullyConnectedFast`
//! (bit-identical, either scheme) computes it.

use tinyq_ir::{op, Tensor};
use tinyq_kernels::conv::ConvQParams;
use tinyq_kernels::fast::fully_connected::FullyConnectedFast;
use tinyq_kernels::fully_connected::{
    fully_connected, fully_connected_per_channel, prepare_fully_connected as prepare_fully_connected_s8,
    prepare_fully_connected_per_channel, FullyConnectedParams, FullyConnectedPerChannelParams, FullyConnectedQParams,
    FullyConnectedShape,
};
use tinyq_kernels::{QParamsS8, Rounding};

use super::fast::{isa, with_scratch};
use super::{activation, Ctx, Kernel, Prepared};
use crate::Int8Error;

pub(crate) struct FullyConnected {
    scheme: Scheme,
    filter: Vec<i8>,
    bias: Option<Vec<i32>>,
    fast: Option<FullyConnectedFast>,
}

enum Scheme {
    PerTensor(FullyConnectedParams),
    PerChannel { params: FullyConnectedPerChannelParams, multiplier: Vec<i32>, shift: Vec<i32> },
}

/// The `[batches, depth] × [units, depth]` view of a FULLY_CONNECTED, checked against its input
/// and output sizes.
pub(super) fn fully_connected_shape(ctx: &Ctx<'_>, x: &Tensor, w: &Tensor) -> Result<FullyConnectedShape, Int8Error> {
    let [units, depth] = w.shape[..] else {
        return Err(ctx.err(format!("weights `{}` have shape {:?}, expected [units, depth]", w.name, w.shape)));
    };
    let out = ctx.output();
    if units == 0 || !out.numel().is_multiple_of(units) {
        return Err(
            ctx.err(format!("output `{}` of shape {:?} is not a multiple of {units} units", out.name, out.shape))
        );
    }
    let shape = FullyConnectedShape { batches: out.numel() / units, accum_depth: depth, output_depth: units };
    if x.numel() != shape.batches * depth {
        return Err(ctx.err(format!(
            "input `{}` of shape {:?} is not {} rows of {depth} features",
            x.name, x.shape, shape.batches
        )));
    }
    Ok(shape)
}

/// The scale of the optional bias (input 2), which the per-tensor prepare checks as TFLM does.
pub(super) fn bias_scale(ctx: &Ctx<'_>) -> Result<Option<f32>, Int8Error> {
    match ctx.node.inputs.get(2) {
        Some(&b) => Ok(Some(
            *ctx.qparams(ctx.graph.tensor(b))?
                .scale
                .first()
                .ok_or_else(|| ctx.err("the bias has quantization without a scale"))?,
        )),
        None => Ok(None),
    }
}

pub(crate) fn prepare_fully_connected(ctx: &Ctx<'_>, p: &op::FullyConnected) -> Result<Prepared, Int8Error> {
    ctx.expect_inputs(2..=3)?;
    let (x, w) = (ctx.input(0)?, ctx.input(1)?);
    let input = ctx.s8(x)?;
    let output = ctx.s8(ctx.output())?;
    let shape = fully_connected_shape(ctx, x, w)?;
    let units = shape.output_depth;
    let wq = ctx.weight_qparams(w, 0, units)?;
    if wq.scale.len() > 1 {
        ctx.not_int4(w, "one scale per unit")?;
    }
    let bias = ctx.bias(2, units)?;
    let act = activation(p.activation);
    let scheme = if wq.scale.len() == 1 {
        let bias_scale = bias_scale(ctx)?;
        let filter = QParamsS8::new(wq.scale[0], wq.zero_point[0]);
        let qparams = FullyConnectedQParams { input, filter, bias_scale, output };
        Scheme::PerTensor(prepare_fully_connected_s8(shape, &qparams, act, Rounding::Double).map_err(ctx.kernel_err())?)
    } else {
        let qparams = ConvQParams { input, filter_scales: &wq.scale, filter_zero_points: &wq.zero_point, output };
        let (mut multiplier, mut shift) = (vec![0; units], vec![0; units]);
        let params =
            prepare_fully_connected_per_channel(shape, &qparams, act, Rounding::Double, &mut multiplier, &mut shift)
                .map_err(ctx.kernel_err())?;
        Scheme::PerChannel { params, multiplier, shift }
    };
    let filter = ctx.const_i8(w)?.to_vec();
    let fast = isa(ctx.kernels).and_then(|isa| match &scheme {
        Scheme::PerTensor(params) => FullyConnectedFast::per_tensor(params, &filter, bias.as_deref(), isa),
        Scheme::PerChannel { params, multiplier, shift } => {
            FullyConnectedFast::per_channel(params, multiplier, shift, &filter, bias.as_deref(), isa)
        }
    });
    let kernel = FullyConnected { scheme, filter, bias, fast };
    Ok((Kernel::FullyConnected(kernel), vec![ctx.input_id(0)]))
}

impl FullyConnected {
    /// `input` may hold several samples back to back: the rows of all of them are computed.
    pub fn eval(&self, input: &[i8], output: &mut [i8]) {
        if let Some(fast) = &self.fast {
            return with_scratch(fast.scratch_len(), |scratch| fast.eval(input, scratch, output));
        }
        // The reference kernel's batch count is the number of rows this call holds.
        let rows =
            |shape: &FullyConnectedShape| FullyConnectedShape { batches: output.len() / shape.output_depth, ..*shape };
        match &self.scheme {
            Scheme::PerTensor(params) => {
                let params = FullyConnectedParams { shape: rows(&params.shape), ..*params };
                fully_connected(&params, input, &self.filter, self.bias.as_deref(), output)
            }
            Scheme::PerChannel { params, multiplier, shift } => {
                let params = FullyConnectedPerChannelParams { shape: rows(&params.shape), ..*params };
                fully_connected_per_channel(
                    &params,
                    multiplier,
                    shift,
                    input,
                    &self.filter,
                    self.bias.as_deref(),
                    output,
                )
            }
        }
    }
}

impl FullyConnected {
    pub(crate) fn view(&self) -> crate::StepKind<'_> {
        match &self.scheme {
            Scheme::PerTensor(p) => crate::StepKind::FullyConnected(p, &self.filter, self.bias.as_deref()),
            Scheme::PerChannel { params, multiplier, shift } => crate::StepKind::FullyConnectedPerChannel(
                params,
                crate::PerChannel { multiplier, shift, filter: &self.filter, bias: self.bias.as_deref() },
            ),
        }
    }
}
