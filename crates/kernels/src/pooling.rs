//! Parameters shared by AVERAGE_POOL_2D and MAX_POOL_2D (TFLM `micro/kernels/pooling_common.cc`).
//!
//! TFLM requires the int8 or int16 output to carry the input's quantization (`|Δscale| ≤ 1e-6`,
//! equal zero point), so pooling never rescales; the activation range is the output type's.

use crate::conv::check_positive;
use crate::fixedpoint::FusedActivation;
use crate::padding::{compute_padding_height_width, Padding, PaddingValues};
use crate::{ActivationQParams, KernelError, QParamsS8};

/// Builtin options of the 2-D pools.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PoolOptions {
    pub padding: Padding,
    pub stride_height: usize,
    pub stride_width: usize,
    pub filter_height: usize,
    pub filter_width: usize,
    pub activation: FusedActivation,
}

/// TFLM `PoolParams` plus shapes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PoolParams {
    pub stride_height: usize,
    pub stride_width: usize,
    pub filter_height: usize,
    pub filter_width: usize,
    pub padding_values: PaddingValues,
    pub quantized_activation_min: i32,
    pub quantized_activation_max: i32,
    /// NHWC.
    pub input_shape: [usize; 4],
    /// NHWC.
    pub output_shape: [usize; 4],
}

/// Validates an int8 or int16 pool and computes its parameters. int16 zero points must be 0
/// (tinyq's int16 convention; TFLM only needs them equal).
pub fn prepare_pool<Q: ActivationQParams>(
    input_shape: [usize; 4],
    options: &PoolOptions,
    input: Q,
    output: Q,
) -> Result<PoolParams, KernelError> {
    input.validate("input")?;
    output.validate("output")?;
    check_same_scale(input.scale_and_zero_point(), output.scale_and_zero_point())?;
    pool_params(input_shape, options, output.activation_range(options.activation))
}

/// The int8 name (the same generic function).
pub use self::prepare_pool as prepare_pool_s8;

/// `PoolingPrepare`'s check: `|s_in − s_out| ≤ 1e-6` (the difference taken in `f32`) and equal
/// zero points.
fn check_same_scale(input: QParamsS8, output: QParamsS8) -> Result<(), KernelError> {
    if (input.scale - output.scale).abs() > 1e-6 || input.zero_point != output.zero_point {
        return Err(KernelError::QParamsMismatch { tensor: "pool output", expected: input, actual: output });
    }
    Ok(())
}

/// The geometry of a pool (`CalculateOpDataPooling`) with the given activation range.
fn pool_params(
    input_shape: [usize; 4],
    options: &PoolOptions,
    (act_min, act_max): (i32, i32),
) -> Result<PoolParams, KernelError> {
    check_positive("pool input dimension is 0", &input_shape)?;
    check_positive(
        "pool stride and filter size must be >= 1",
        &[options.stride_height, options.stride_width, options.filter_height, options.filter_width],
    )?;
    let [batches, in_height, in_width, depth] = input_shape;
    let (padding_values, out_height, out_width) = compute_padding_height_width(
        options.stride_height,
        options.stride_width,
        1,
        1,
        in_height,
        in_width,
        options.filter_height,
        options.filter_width,
        options.padding,
    );
    check_positive("pool output would be empty", &[out_height, out_width])?;
    Ok(PoolParams {
        stride_height: options.stride_height,
        stride_width: options.stride_width,
        filter_height: options.filter_height,
        filter_width: options.filter_width,
        padding_values,
        quantized_activation_min: act_min,
        quantized_activation_max: act_max,
        input_shape,
        output_shape: [batches, out_height, out_width, depth],
    })
}

/// Calls `f(output_index, window)` for every output element, where `window` iterates the flat
/// input indices of the in-image taps. Every window holds at least one tap: TFLM's padding never
/// exceeds `filter − 1` in total.
pub(crate) fn for_each_window(params: &PoolParams, mut f: impl FnMut(usize, &mut dyn Iterator<Item = usize>)) {
    let [batches, in_height, in_width, depth] = params.input_shape;
    let [_, out_height, out_width, _] = params.output_shape;
    let mut out_index = 0;
    for batch in 0..batches {
        for out_y in 0..out_height {
            let in_y_origin = (out_y * params.stride_height) as isize - params.padding_values.height as isize;
            let y_start = in_y_origin.max(0) as usize;
            let y_end = (in_y_origin + params.filter_height as isize).min(in_height as isize).max(0) as usize;
            for out_x in 0..out_width {
                let in_x_origin = (out_x * params.stride_width) as isize - params.padding_values.width as isize;
                let x_start = in_x_origin.max(0) as usize;
                let x_end = (in_x_origin + params.filter_width as isize).min(in_width as isize).max(0) as usize;
                for channel in 0..depth {
                    let mut taps = (y_start..y_end).flat_map(move |in_y| {
                        (x_start..x_end)
                            .map(move |in_x| ((batch * in_height + in_y) * in_width + in_x) * depth + channel)
                    });
                    f(out_index, &mut taps);
                    out_index += 1;
                }
            }
        }
    }
}
