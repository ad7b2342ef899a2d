//! QUANTIZE (float32 → int8, int8 → int8 requantize, int8 ⇄ int16 around 16x8 layers) and DEQUANTIZE (int8 → float32), the
//! graph's edges. Kernels: `tinyq_kernels::{quantize, requantize, dequantize}` (TFLM
//! `reference_ops::AffineQuantize`, `Requantize`, `Dequantize`). These are the only kernels that
//! touch float at eval time, as in TFLM.

use tinyq_ir::DType;
use tinyq_kernels::dequantize::{dequantize_s8, prepare_dequantize_s8, DequantizeParams};
use tinyq_kernels::quantize::{affine_quantize_s8, prepare_affine_quantize_s8, AffineQuantizeParams};
use tinyq_kernels::requantize::{
    prepare_requantize, prepare_requantize_s8, requantize_int, requantize_s8, RequantizeParams,
};
use tinyq_kernels::Rounding;

use super::{Ctx, Kernel, Prepared};
use crate::{Int8Error, TensorValue};

pub(crate) enum Quantize {
    FromF32(AffineQuantizeParams),
    Requantize(RequantizeParams),
    /// int8 → int16 and int16 → int8, at the edges of 16x8 layers.
    S8ToS16(RequantizeParams),
    S16ToS8(RequantizeParams),
}

pub(crate) struct Dequantize {
    params: DequantizeParams,
}

pub(crate) fn prepare_quantize(ctx: &Ctx<'_>) -> Result<Prepared, Int8Error> {
    ctx.expect_inputs(1..=1)?;
    let x = ctx.input(0)?;
    let out = ctx.output();
    let requantize = |input: (f32, i32, u32), output: (f32, i32, u32)| {
        prepare_requantize(input.0, input.1, input.2, output.0, output.1, output.2, Rounding::Double)
            .map_err(ctx.kernel_err())
    };
    match (x.dtype, out.dtype) {
        (DType::I8, DType::I16) => {
            let (i, o) = (ctx.s8(x)?, ctx.s16(out)?);
            let p = requantize((i.scale, i.zero_point, 8), (o.scale, o.zero_point, 16))?;
            return Ok((Kernel::Quantize(Quantize::S8ToS16(p)), vec![ctx.input_id(0)]));
        }
        (DType::I16, DType::I8) => {
            let (i, o) = (ctx.s16(x)?, ctx.s8(out)?);
            let p = requantize((i.scale, i.zero_point, 16), (o.scale, o.zero_point, 8))?;
            return Ok((Kernel::Quantize(Quantize::S16ToS8(p)), vec![ctx.input_id(0)]));
        }
        _ => {}
    }
    let output = ctx.s8(ctx.output())?;
    let kernel = match x.dtype {
        DType::F32 => Quantize::FromF32(prepare_affine_quantize_s8(output).map_err(ctx.kernel_err())?),
        DType::I8 => {
            Quantize::Requantize(prepare_requantize_s8(ctx.s8(x)?, output, Rounding::Double).map_err(ctx.kernel_err())?)
        }
        other => return Err(ctx.err(format!("quantizing {} to int8 is not supported", other.name()))),
    };
    Ok((Kernel::Quantize(kernel), vec![ctx.input_id(0)]))
}

pub(crate) fn prepare_dequantize(ctx: &Ctx<'_>) -> Result<Prepared, Int8Error> {
    ctx.expect_inputs(1..=1)?;
    let out = ctx.output();
    if out.dtype != DType::F32 {
        return Err(ctx.err(format!("output `{}` is {}, expected float32", out.name, out.dtype.name())));
    }
    let params = prepare_dequantize_s8(ctx.s8(ctx.input(0)?)?).map_err(ctx.kernel_err())?;
    Ok((Kernel::Dequantize(Dequantize { params }), vec![ctx.input_id(0)]))
}

impl Quantize {
    pub fn eval(&self, input: &TensorValue, output: &mut TensorValue) {
        match (self, output) {
            (Quantize::FromF32(p), TensorValue::I8(out)) => {
                affine_quantize_s8(p, input.as_f32().expect("float32 checked in prepare"), out)
            }
            (Quantize::Requantize(p), TensorValue::I8(out)) => {
                requantize_s8(p, input.as_i8().expect("int8 checked in prepare"), out)
            }
            (Quantize::S8ToS16(p), TensorValue::I16(out)) => {
                requantize_int(p, input.as_i8().expect("int8 checked in prepare"), out)
            }
            (Quantize::S16ToS8(p), TensorValue::I8(out)) => {
                requantize_int(p, input.as_i16().expect("int16 checked in prepare"), out)
            }
            _ => unreachable!("QUANTIZE output dtype checked in prepare"),
        }
    }
}

impl Dequantize {
    pub fn eval(&self, input: &[i8], output: &mut [f32]) {
        dequantize_s8(&self.params, input, output);
    }
}
