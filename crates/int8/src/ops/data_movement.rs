//! Ops that only move int8 values: CONCATENATION, RESHAPE, TRANSPOSE, STRIDED_SLICE, PAD, MIRROR_PAD,
//! RESIZE_BILINEAR and
//! RESIZE_NEAREST_NEIGHBOR, and the int16
//! CONCATENATION, RESHAPE and PAD (PADV2). Under the int8 spec they keep their input's scale and zero point; this refuses
//! any difference rather than silently reinterpreting values (TFLM checks it for CONCATENATION
//! only). Kernels:
//! `tinyq_kernels::{concatenation, reshape, transpose, strided_slice, pad, mirror_pad,
//! resize_nearest_neighbor, resize_bilinear}`.

use tinyq_ir::{op, FusedActivation};
use tinyq_kernels::concatenation::{
    check_concatenation_qparams_s8, concatenation, prepare_concatenation, ConcatenationParams,
};
use tinyq_kernels::mirror_pad::prepare_mirror_pad as prepare_mirror_pad_s8;
use tinyq_kernels::pad::{pad, prepare_pad as prepare_pad_s8, PadParams};
use tinyq_kernels::reshape::prepare_reshape as prepare_reshape_s8;
use tinyq_kernels::resize_bilinear::prepare_resize_bilinear as prepare_resize_bilinear_s8;
use tinyq_kernels::resize_nearest_neighbor::prepare_resize_nearest_neighbor;
use tinyq_kernels::strided_slice::{prepare_strided_slice as prepare_strided_slice_s8, StridedSliceOperands};
use tinyq_kernels::transpose::{prepare_transpose as prepare_transpose_s8, transpose, TransposeParams};

use super::{Ctx, Kernel, Prepared};
use crate::Int8Error;

pub(crate) struct Concat {
    params: ConcatenationParams,
}

pub(crate) struct Transpose {
    params: TransposeParams,
}

/// PAD of int8 (`T = i8`) or int16 values.
pub(crate) struct Pad<T> {
    params: PadParams,
    value: T,
    /// `tinyq_kernels::fast::pad` (same bytes, whole runs copied) unless the plan runs the
    /// reference kernels.
    fast: bool,
}

/// CONCATENATION of int8 tensors (every input with the output's quantization, as TFLM checks),
/// or (`wide`) of int16 ones: TFLM only checks that every zero point is 0 and copies the values.
pub(crate) fn prepare_concat(ctx: &Ctx<'_>, p: &op::Concat, wide: bool) -> Result<Prepared, Int8Error> {
    if p.activation != FusedActivation::None {
        return Err(ctx.err("a fused activation on CONCATENATION is refused by TFLM"));
    }
    let out = ctx.output();
    let inputs = (0..ctx.node.inputs.len()).map(|k| ctx.input(k)).collect::<Result<Vec<_>, _>>()?;
    if wide {
        for t in inputs.iter().copied().chain(std::iter::once(out)) {
            if ctx.s16(t)?.zero_point != 0 {
                return Err(ctx.err(format!("int16 tensor `{}` has a nonzero zero point", t.name)));
            }
        }
    } else {
        let qparams = inputs.iter().map(|t| ctx.s8(t)).collect::<Result<Vec<_>, _>>()?;
        check_concatenation_qparams_s8(&qparams, ctx.s8(out)?).map_err(ctx.kernel_err())?;
    }
    let shapes: Vec<&[usize]> = inputs.iter().map(|t| &t.shape[..]).collect();
    let axis = i32::try_from(p.axis).map_err(|_| ctx.err(format!("axis {} is out of range", p.axis)))?;
    let params = prepare_concatenation(axis, &shapes, &out.shape).map_err(ctx.kernel_err())?;
    let concat = Concat { params };
    Ok((if wide { Kernel::Concat16(concat) } else { Kernel::Concat(concat) }, ctx.node.inputs.clone()))
}

/// RESHAPE of int8 tensors, or (`wide`) of int16 ones with zero point 0: either way the same
/// quantization on input and output.
pub(crate) fn prepare_reshape(ctx: &Ctx<'_>, wide: bool) -> Result<Prepared, Int8Error> {
    ctx.expect_inputs(1..=1)?;
    if wide {
        ctx.same_qparams_s16("RESHAPE")?;
    } else {
        ctx.same_qparams_s8()?;
    }
    prepare_reshape_s8(&ctx.input(0)?.shape, &ctx.output().shape).map_err(ctx.kernel_err())?;
    Ok((if wide { Kernel::Reshape16 } else { Kernel::Reshape }, vec![ctx.input_id(0)]))
}

pub(crate) fn prepare_transpose(ctx: &Ctx<'_>, p: &op::Transpose) -> Result<Prepared, Int8Error> {
    ctx.expect_inputs(1..=1)?;
    ctx.same_qparams_s8()?;
    let params = prepare_transpose_s8(&ctx.input(0)?.shape, &p.perm).map_err(ctx.kernel_err())?;
    ctx.check_output_shape(params.output_shape.as_slice())?;
    Ok((Kernel::Transpose(Transpose { params }), vec![ctx.input_id(0)]))
}

/// STRIDED_SLICE with the operands the `.tflite` writer stores for the slice.
pub(crate) fn prepare_strided_slice(ctx: &Ctx<'_>, p: &op::StridedSlice) -> Result<Prepared, Int8Error> {
    ctx.expect_inputs(1..=1)?;
    ctx.same_qparams_s8()?;
    let t = p.tflite().map_err(|e| ctx.err(e))?;
    let operands = StridedSliceOperands {
        begin: &t.begin,
        end: &t.end,
        strides: &t.strides,
        begin_mask: t.begin_mask,
        end_mask: t.end_mask,
        shrink_axis_mask: t.shrink_axis_mask,
    };
    let params = prepare_strided_slice_s8(&ctx.input(0)?.shape, operands).map_err(ctx.kernel_err())?;
    Ok((Kernel::StridedSlice(params), vec![ctx.input_id(0)]))
}

/// RESIZE_BILINEAR interpolates stored values: the output keeps the input's parameters.
pub(crate) fn prepare_resize_bilinear(ctx: &Ctx<'_>, p: &op::ResizeNearest) -> Result<Prepared, Int8Error> {
    ctx.expect_inputs(1..=1)?;
    ctx.same_qparams_s8()?;
    let params = prepare_resize_bilinear_s8(&ctx.input(0)?.shape, p.size, p.align_corners, p.half_pixel_centers)
        .map_err(ctx.kernel_err())?;
    Ok((Kernel::ResizeBilinear(params), vec![ctx.input_id(0)]))
}

/// MIRROR_PAD copies stored values: the output keeps the input's parameters.
pub(crate) fn prepare_mirror_pad(ctx: &Ctx<'_>, p: &op::MirrorPad) -> Result<Prepared, Int8Error> {
    ctx.expect_inputs(1..=1)?;
    ctx.same_qparams_s8()?;
    let params = prepare_mirror_pad_s8(&ctx.input(0)?.shape, &p.pads, p.reflect).map_err(ctx.kernel_err())?;
    Ok((Kernel::MirrorPad(params), vec![ctx.input_id(0)]))
}

/// PAD fills with the output zero point (int8) or 0 (int16, `wide`); PADV2's real `value` is
/// quantized with the output's parameters, as its constant must share them (TFLM copies the
/// constant's raw value, for int16 without checking its quantization).
pub(crate) fn prepare_pad(ctx: &Ctx<'_>, p: &op::Pad, wide: bool) -> Result<Prepared, Int8Error> {
    ctx.expect_inputs(1..=1)?;
    let (scale, zero_point, (min, max)) = if wide {
        (ctx.same_qparams_s16("PAD")?.scale, 0, (i16::MIN as i32, i16::MAX as i32))
    } else {
        let q = ctx.same_qparams_s8()?;
        (q.scale, q.zero_point, (i8::MIN as i32, i8::MAX as i32))
    };
    let params = prepare_pad_s8(&ctx.input(0)?.shape, &p.pads).map_err(ctx.kernel_err())?;
    ctx.check_output_shape(params.output_shape.as_slice())?;
    let value = if p.value == 0.0 {
        zero_point
    } else {
        let quantized = (p.value / scale).round();
        if !quantized.is_finite() {
            return Err(ctx.err(format!("pad value {} cannot be quantized", p.value)));
        }
        (quantized as i32).saturating_add(zero_point)
    };
    let value = value.clamp(min, max);
    let fast = ctx.kernels != crate::Kernels::Reference;
    let kernel = if wide {
        Kernel::Pad16(Pad { params, value: value as i16, fast })
    } else {
        Kernel::Pad(Pad { params, value: value as i8, fast })
    };
    Ok((kernel, vec![ctx.input_id(0)]))
}

impl Concat {
    pub fn eval<T: Copy>(&self, inputs: &[&[T]], output: &mut [T]) {
        concatenation(&self.params, inputs, output);
    }
}

impl Transpose {
    pub fn eval(&self, input: &[i8], output: &mut [i8]) {
        transpose(&self.params, input, output);
    }
}

impl<T: Copy> Pad<T> {
    pub fn eval(&self, input: &[T], output: &mut [T]) {
        if self.fast {
            tinyq_kernels::fast::pad::pad(&self.params, self.value, input, output);
        } else {
            pad(&self.params, self.value, input, output);
        }
    }
}

/// RESIZE_NEAREST_NEIGHBOR of int8 values (input and output share their quantization).
pub(crate) fn prepare_resize_nearest(ctx: &Ctx<'_>, p: &op::ResizeNearest) -> Result<Prepared, Int8Error> {
    ctx.expect_inputs(1..=1)?;
    ctx.same_qparams_s8()?;
    let x = ctx.input(0)?;
    let params = prepare_resize_nearest_neighbor(&x.shape, p.size, p.align_corners, p.half_pixel_centers)
        .map_err(ctx.kernel_err())?;
    ctx.check_output_shape(&[x.shape[0], p.size[0], p.size[1], x.shape[3]])?;
    Ok((Kernel::ResizeNearest(params), vec![ctx.input_id(0)]))
}

impl Concat {
    pub(crate) fn params(&self) -> &ConcatenationParams {
        &self.params
    }
}

impl Transpose {
    pub(crate) fn params(&self) -> &TransposeParams {
        &self.params
    }
}

impl<T: Copy> Pad<T> {
    pub(crate) fn params(&self) -> &PadParams {
        &self.params
    }

    pub(crate) fn value(&self) -> T {
        self.value
    }
}
