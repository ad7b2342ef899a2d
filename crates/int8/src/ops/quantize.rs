//! QUANTIZE (float32 → int8, and int8 → int8 requantize) and DEQUANTIZE (int8 → float32), the
//! graph's edges. Kernels: `tinyq_kernels::{quantize, requantize, dequantize}` (TFLM
//! `reference_ops::AffineQuantize`, `Requantize`, `Dequantize`). These are the only kernels that
//! touch float at eval time, as in TFLM.

use tinyq_ir::DType;
use tinyq_kernels::dequantize::{dequantize_s8, prepare_dequantize_s8, DequantizeParams};
use tinyq_kernels::quantize::{affine_quantize_s8, prepare_affine_quantize_s8, AffineQuantizeParams};
use tinyq_kernels::requantize::{prepare_requantize_s8, requantize_s8, RequantizeParams};
use tinyq_kernels::Rounding;

use super::{Ctx, Kernel, Prepared};
use crate::{Int8Error, TensorValue};

pub(crate) enum Quantize {
    FromF32(AffineQuantizeParams),
    Requantize(RequantizeParams),
}

pub(crate) struct Dequantize {
    params: DequantizeParams,
}

pub(crate) fn prepare_quantize(ctx: &Ctx<'_>) -> Result<Prepared, Int8Error> {
    ctx.expect_inputs(1..=1)?;
    let x = ctx.input(0)?;
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
    pub fn eval(&self, input: &TensorValue, output: &mut [i8]) {
        match self {
            Quantize::FromF32(p) => affine_quantize_s8(p, input.as_f32().expect("float32 checked in prepare"), output),
            Quantize::Requantize(p) => requantize_s8(p, input.as_i8().expect("int8 checked in prepare"), output),
        }
    }
}

impl Dequantize {
    pub fn eval(&self, input: &[i8], output: &mut [f32]) {
        dequantize_s8(&self.params, input, output);
    }
}
