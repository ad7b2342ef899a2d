//! Ops that only move int8 values: CONCATENATION, RESHAPE, TRANSPOSE and PAD. Under the int8
//! spec they keep their input's scale and zero point; this refuses any difference rather than
//! silently reinterpreting values (TFLM checks it for CONCATENATION only). Kernels:
//! `tinyq_kernels::{concatenation, reshape, transpose, pad}`.

use tinyq_ir::{op, FusedActivation};
use tinyq_kernels::concatenation::{
    check_concatenation_qparams_s8, concatenation, prepare_concatenation, ConcatenationParams,
};
use tinyq_kernels::pad::{pad, prepare_pad as prepare_pad_s8, PadParams};
use tinyq_kernels::reshape::prepare_reshape as prepare_reshape_s8;
use tinyq_kernels::transpose::{prepare_transpose as prepare_transpose_s8, transpose, TransposeParams};

use super::{Ctx, Kernel, Prepared};
use crate::Int8Error;

pub(crate) struct Concat {
    params: ConcatenationParams,
}

pub(crate) struct Transpose {
    params: TransposeParams,
}

pub(crate) struct Pad {
    params: PadParams,
    value: i8,
}

pub(crate) fn prepare_concat(ctx: &Ctx<'_>, p: &op::Concat) -> Result<Prepared, Int8Error> {
    if p.activation != FusedActivation::None {
        return Err(ctx.err("a fused activation on CONCATENATION is refused by TFLM"));
    }
    let out = ctx.output();
    let inputs = (0..ctx.node.inputs.len()).map(|k| ctx.input(k)).collect::<Result<Vec<_>, _>>()?;
    let qparams = inputs.iter().map(|t| ctx.s8(t)).collect::<Result<Vec<_>, _>>()?;
    check_concatenation_qparams_s8(&qparams, ctx.s8(out)?).map_err(ctx.kernel_err())?;
    let shapes: Vec<&[usize]> = inputs.iter().map(|t| &t.shape[..]).collect();
    let axis = i32::try_from(p.axis).map_err(|_| ctx.err(format!("axis {} is out of range", p.axis)))?;
    let params = prepare_concatenation(axis, &shapes, &out.shape).map_err(ctx.kernel_err())?;
    Ok((Kernel::Concat(Concat { params }), ctx.node.inputs.clone()))
}

pub(crate) fn prepare_reshape(ctx: &Ctx<'_>) -> Result<Prepared, Int8Error> {
    ctx.expect_inputs(1..=1)?;
    ctx.same_qparams_s8()?;
    prepare_reshape_s8(&ctx.input(0)?.shape, &ctx.output().shape).map_err(ctx.kernel_err())?;
    Ok((Kernel::Reshape, vec![ctx.input_id(0)]))
}

pub(crate) fn prepare_transpose(ctx: &Ctx<'_>, p: &op::Transpose) -> Result<Prepared, Int8Error> {
    ctx.expect_inputs(1..=1)?;
    ctx.same_qparams_s8()?;
    let params = prepare_transpose_s8(&ctx.input(0)?.shape, &p.perm).map_err(ctx.kernel_err())?;
    ctx.check_output_shape(params.output_shape.as_slice())?;
    Ok((Kernel::Transpose(Transpose { params }), vec![ctx.input_id(0)]))
}

/// PAD fills with the output zero point; PADV2's real `value` is quantized with the output's
/// parameters, as its constant must share them.
pub(crate) fn prepare_pad(ctx: &Ctx<'_>, p: &op::Pad) -> Result<Prepared, Int8Error> {
    ctx.expect_inputs(1..=1)?;
    let q = ctx.same_qparams_s8()?;
    let params = prepare_pad_s8(&ctx.input(0)?.shape, &p.pads).map_err(ctx.kernel_err())?;
    ctx.check_output_shape(params.output_shape.as_slice())?;
    let value = if p.value == 0.0 {
        q.zero_point
    } else {
        let quantized = (p.value / q.scale).round();
        if !quantized.is_finite() {
            return Err(ctx.err(format!("pad value {} cannot be quantized", p.value)));
        }
        (quantized as i32).saturating_add(q.zero_point)
    };
    let value = value.clamp(i8::MIN as i32, i8::MAX as i32) as i8;
    Ok((Kernel::Pad(Pad { params, value }), vec![ctx.input_id(0)]))
}

/// PAD of an int16 tensor (explicit padding before a 16x8 conv): input and output share their
/// quantization (zero point 0), filled with 0 as TFLM's PAD does without a constant.
pub(crate) fn prepare_pad_16(ctx: &Ctx<'_>, p: &op::Pad) -> Result<Prepared, Int8Error> {
    ctx.expect_inputs(1..=1)?;
    let (input, output) = (ctx.s16(ctx.input(0)?)?, ctx.s16(ctx.output())?);
    if input != output || output.zero_point != 0 {
        return Err(ctx.err("an int16 PAD needs the same quantization on input and output, with zero point 0"));
    }
    if p.value != 0.0 {
        return Err(ctx.err(format!("an int16 PAD pads with 0, not {}", p.value)));
    }
    let params = prepare_pad_s8(&ctx.input(0)?.shape, &p.pads).map_err(ctx.kernel_err())?;
    ctx.check_output_shape(params.output_shape.as_slice())?;
    Ok((Kernel::Pad16(Pad16 { params }), vec![ctx.input_id(0)]))
}

pub(crate) struct Pad16 {
    params: PadParams,
}

impl Pad16 {
    pub fn eval(&self, input: &[i16], output: &mut [i16]) {
        pad(&self.params, 0, input, output);
    }
}

impl Concat {
    pub fn eval(&self, inputs: &[&[i8]], output: &mut [i8]) {
        concatenation(&self.params, inputs, output);
    }
}

impl Transpose {
    pub fn eval(&self, input: &[i8], output: &mut [i8]) {
        transpose(&self.params, input, output);
    }
}

impl Pad {
    pub fn eval(&self, input: &[i8], output: &mut [i8]) {
        pad(&self.params, self.value, input, output);
    }
}
