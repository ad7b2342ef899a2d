//! `--kernels cmsis-nn`: the steps CMSIS-NN has int8 kernels for (convolutions, depthwise
//! convolutions, fully connected layers, elementwise ADD, pools) become calls into the user's
//! CMSIS-NN with the arguments TFLM's CMSIS-NN kernels pass (`tensorflow/lite/micro/kernels/
//! cmsis_nn/*.cc`), and the scratch its `*_get_buffer_size` functions ask for on a Cortex-M with
//! the DSP extension, placed in the arena. 1x1 convolutions (see [`is_pointwise`]) run on
//! tinyq's pointwise kernel instead (`c/tq_pointwise.c`, built on CMSIS-NN's DSP helpers), which
//! needs no weight sums at run time. The other steps keep the portable kernels.

use std::fmt::Write;

use tinyq_int8::{PerChannel, StepKind, StepView};
use tinyq_kernels::conv::ConvPerChannelParams;

use crate::memory::Sharing;
use crate::steps::Rows;
use crate::steps::{Emitted, Operands};

/// Whether CMSIS-NN runs this step, how it may share memory, and the scratch it needs.
/// Convolutions and depthwise convolutions on one image may write their output overlapping
/// their input: they are then called a band of output rows at a time ([`band_rows`]), each
/// call seeing only the input rows its band reads.
pub fn plan(step: &StepView<'_>) -> Option<(Sharing, usize)> {
    Some(match &step.kind {
        StepKind::Conv2D(c, _) => {
            let [_, _, _, in_c] = c.input_shape;
            let [_, kh, kw, fc] = c.filter_shape;
            let pad = [c.padding_values.height, c.padding_values.width];
            let dil = [c.dilation_height, c.dilation_width];
            let scratch = tinyq_arena::cmsis_conv_s8_scratch([kh, kw], in_c, fc, pad, dil);
            (overlap(Rows::conv(c), band_rows(c.output_shape[2], conv_band_pixels(c))), scratch)
        }
        StepKind::DepthwiseConv2D(c, _) => {
            let [n, _, _, in_c] = c.input_shape;
            let [_, kh, kw, out_c] = c.filter_shape;
            let pad = [c.padding_values.height, c.padding_values.width];
            let dil = [c.dilation_height, c.dilation_width];
            let scratch = tinyq_arena::cmsis_depthwise_s8_scratch([kh, kw], n, in_c, out_c, pad, dil);
            (overlap(Rows::depthwise(c), band_rows(c.output_shape[2], 16)), scratch)
        }
        StepKind::FullyConnected(..) | StepKind::FullyConnectedPerChannel(..) => (Sharing::None, 0),
        StepKind::Add { broadcast: false, .. } => (Sharing::InPlace { input: 0, scratch: 0 }, 0),
        StepKind::MaxPool(_) => (Sharing::None, 0),
        // arm_avgpool_s8_get_buffer_size_dsp: one int32 per channel.
        StepKind::AveragePool(p) => (Sharing::None, 4 * p.input_shape[3]),
        _ => return None,
    })
}

fn overlap(rows: Option<Rows>, band: usize) -> Sharing {
    match rows {
        Some(r) if r.reads_every_row() => r.sharing(band),
        _ => Sharing::None,
    }
}

/// Output rows per banded call: whole rows, at least `pixels` pixels and a multiple of 4 where
/// that is near (CMSIS-NN's kernels work on groups of pixels, and each call costs a setup).
fn band_rows(width: usize, pixels: usize) -> usize {
    let width = width.max(1);
    (1..=pixels).find(|r| r * width >= pixels && (r * width).is_multiple_of(4)).unwrap_or(pixels.div_ceil(width))
}

/// Pixels per banded call of a convolution. CMSIS-NN's: 64, since each call repeats a setup (the
/// im2col kernels' buffers). tinyq's pointwise kernel has none to repeat (the weight sums CMSIS-NN's
/// 1x1 routines compute on every call are folded into the bias at export), so its bands are
/// smaller: the output may then start fewer rows below its input.
fn conv_band_pixels(c: &ConvPerChannelParams) -> usize {
    if is_pointwise(c) {
        POINTWISE_BAND_PIXELS
    } else {
        64
    }
}

/// At least 8 pixels per band keeps the pointwise kernel's two-by-two pixel blocks whole on most
/// widths ([`band_rows`] rounds a band to a multiple of 4 pixels where that is near).
const POINTWISE_BAND_PIXELS: usize = 8;

/// Whether tinyq's pointwise kernel (`tq_pointwise.c`) runs this convolution instead of
/// CMSIS-NN: a 1x1 kernel without padding or dilation over all input channels, the case CMSIS-NN
/// sends to its 1x1 routines (`arm_nn_is_convolve_1x1`), which on a core with the DSP extension
/// sum every weight row again on each call, and with a stride on each output row.
fn is_pointwise(c: &ConvPerChannelParams) -> bool {
    let [_, kh, kw, fc] = c.filter_shape;
    let pad = [c.padding_values.height, c.padding_values.width];
    kh == 1 && kw == 1 && pad == [0; 2] && c.dilation_height == 1 && c.dilation_width == 1 && fc == c.input_shape[3]
}

/// The functions computing a CMSIS-NN build's convolution: whole (with
/// `arm_convolve_wrapper_s8`'s arguments) and a band of output rows (`tq_cmsis_conv_rows`'s;
/// with `_from` appended, `tq_cmsis_conv_rows_from`'s).
fn conv_functions(c: &ConvPerChannelParams) -> [&'static str; 2] {
    if is_pointwise(c) {
        ["tq_pointwise_s8", "tq_pointwise_rows"]
    } else {
        ["arm_convolve_wrapper_s8", "tq_cmsis_conv_rows"]
    }
}

/// How a banded or fused call passes the convolution step [`emit`] wrote with prefix `p`: the
/// function computing a band of its rows (see [`conv_functions`]), its filter and its bias.
pub fn conv_operands(c: &ConvPerChannelParams, w: &PerChannel<'_>, p: &str) -> (&'static str, String, String) {
    let [_, rows] = conv_functions(c);
    if is_pointwise(c) {
        (rows, format!("(const int8_t *){p}_w"), format!("{p}_b"))
    } else {
        (rows, format!("{p}_w"), bias(p, w))
    }
}

/// The pointwise kernel's constants: its int16 weights (`pointwise_weights`), the bias with the
/// input offset's share folded in (`folded_bias`), multipliers and shifts. Returns the filter
/// and bias arguments.
fn pointwise_constants(e: &mut Emitted, p: &str, c: &ConvPerChannelParams, w: &PerChannel<'_>) -> (String, String) {
    let [rows, cols] = [c.output_shape[3], c.input_shape[3]];
    e.array(&format!("{p}_w"), "int16_t", &pointwise_weights(w.filter, rows, cols));
    e.array(&format!("{p}_b"), "int32_t", &folded_bias(w.filter, w.bias, c.input_offset, rows, cols));
    e.array(&format!("{p}_m"), "int32_t", w.multiplier);
    e.array(&format!("{p}_s"), "int32_t", w.shift);
    let (_, filter, bias) = conv_operands(c, w, p);
    (filter, bias)
}

/// `bias[c] + input_offset * sum(filter[c])` per output channel, in the device's wrapping int32
/// arithmetic (what CMSIS-NN's 1x1 routines start each accumulator from).
fn folded_bias(filter: &[i8], bias: Option<&[i32]>, input_offset: i32, rows: usize, cols: usize) -> Vec<i32> {
    (0..rows)
        .map(|c| {
            let sum = filter[c * cols..(c + 1) * cols].iter().fold(0i32, |s, &v| s.wrapping_add(v as i32));
            let b = bias.map_or(0, |b| b[c]);
            b.wrapping_add(input_offset.wrapping_mul(sum))
        })
        .collect()
}

/// The `[rows, cols]` filter in the pointwise kernel's layout (see `tq_pointwise.c`): blocks of
/// two rows (the last alone when `rows` is odd); per block, four columns at a time, each row's
/// `{w[k], w[k+2]}, {w[k+1], w[k+3]}`; then the last `cols % 4` columns, one value per row.
fn pointwise_weights(filter: &[i8], rows: usize, cols: usize) -> Vec<i16> {
    let mut out = Vec::with_capacity(rows * cols);
    let four = cols / 4 * 4;
    for c0 in (0..rows).step_by(2) {
        let block = c0..(c0 + 2).min(rows);
        for k in (0..four).step_by(4) {
            for c in block.clone() {
                out.extend([0, 2, 1, 3].map(|j| filter[c * cols + k + j] as i16));
            }
        }
        for k in four..cols {
            out.extend(block.clone().map(|c| filter[c * cols + k] as i16));
        }
    }
    out
}

fn dims(d: [usize; 4]) -> String {
    format!("{{{}, {}, {}, {}}}", d[0], d[1], d[2], d[3])
}

/// A CMSIS-NN convolution call: its params struct (up to the tiles), the tiles (stride,
/// padding, dilation as `[h, w]`), the activation range, the dims (input, filter, bias, output),
/// the wrapper and tinyq's banded form of it (`tq_cmsis_*_rows`).
struct ConvCall<'a> {
    params: String,
    tiles: [[usize; 2]; 3],
    act: [i32; 2],
    dims: [[usize; 4]; 4],
    wrapper: &'static str,
    rows: &'static str,
    band_pixels: usize,
    /// tinyq's pointwise kernel: int16 weights in its layout and the folded bias.
    pointwise: Option<&'a ConvPerChannelParams>,
}

impl ConvCall<'_> {
    /// `banded`: called a band of output rows at a time (the output overlaps the input),
    /// top-down or (`Some(true)`) bottom-up.
    #[allow(clippy::too_many_arguments)]
    fn emit(&self, e: &mut Emitted, p: &str, w: &PerChannel<'_>, banded: Option<bool>, ctx: &str, x: &str, y: &str) {
        let (filter, b) = match self.pointwise {
            Some(c) => pointwise_constants(e, p, c, w),
            None => {
                weights(e, p, w);
                (format!("{p}_w"), bias(p, w))
            }
        };
        let t: Vec<String> = self.tiles.iter().map(|[h, w]| format!("{{{w}, {h}}}")).collect();
        let [lo, hi] = self.act;
        let _ = writeln!(e.defs, "static const {}{}, {{{lo}, {hi}}}}};", self.params, t.join(", "));
        let q = format!("cmsis_nn_per_channel_quant_params q = {{(int32_t *){p}_m, (int32_t *){p}_s}};");
        let [i, f, bd, o] = self.dims;
        shapes(e, p, i, f, bd, o);
        let args = format!("&ctx, &{p}_cp, &q, &{p}_id, {x}, &{p}_fd, {filter}, &{p}_bd, {b}, &{p}_od");
        if let Some(reverse) = banded {
            let ([_, oh, ow, oc], band) = (o, band_rows(o[2], self.band_pixels));
            let walk = if reverse {
                format!("r = {}; r >= 0; r -= {band}", (oh.max(1) - 1) / band * band)
            } else {
                format!("r = 0; r < {oh}; r += {band}")
            };
            e.line(format!(
                "{{ cmsis_nn_context ctx = {ctx}; {q} int32_t r; for ({walk}) {{ \
                 {}({args}, {y} + r * {}, r, {oh} - r < {band} ? {oh} - r : {band}); }} }}",
                self.rows,
                ow * oc
            ));
        } else {
            e.line(format!("{{ cmsis_nn_context ctx = {ctx}; {q} {}({args}, {y}); }}", self.wrapper));
        }
    }
}

fn context(ops: &Operands, bytes: usize) -> String {
    match (&ops.scratch, bytes) {
        (Some(s), b) if b > 0 => format!("{{{s}, {b}}}"),
        _ => "{NULL, 0}".into(),
    }
}

/// The CMSIS-NN call of a step [`plan`] accepted, with its constant arguments.
pub fn emit(step: &StepView<'_>, p: &str, ops: &Operands, scratch: usize, banded: Option<bool>, e: &mut Emitted) {
    let (x, y) = (&ops.inputs[0], &ops.output);
    let ctx = context(ops, scratch);
    match &step.kind {
        StepKind::Conv2D(c, w) => {
            let [_, kh, kw, fc] = c.filter_shape;
            let oc = c.output_shape[3];
            let call = ConvCall {
                params: format!("cmsis_nn_conv_params {p}_cp = {{{}, {}, ", c.input_offset, c.output_offset),
                tiles: [
                    [c.stride_height, c.stride_width],
                    [c.padding_values.height, c.padding_values.width],
                    [c.dilation_height, c.dilation_width],
                ],
                act: [c.quantized_activation_min, c.quantized_activation_max],
                dims: [c.input_shape, [1, kh, kw, fc], [1, 1, 1, oc], c.output_shape],
                wrapper: conv_functions(c)[0],
                rows: conv_functions(c)[1],
                band_pixels: conv_band_pixels(c),
                pointwise: is_pointwise(c).then_some(*c),
            };
            if call.pointwise.is_some() {
                e.files.push("tq_pointwise.c");
            }
            call.emit(e, p, w, banded, &ctx, x, y);
        }
        StepKind::DepthwiseConv2D(c, w) => {
            let [_, kh, kw, oc] = c.filter_shape;
            let call = ConvCall {
                params: format!(
                    "cmsis_nn_dw_conv_params {p}_cp = {{{}, {}, {}, ",
                    c.input_offset, c.output_offset, c.depth_multiplier
                ),
                tiles: [
                    [c.stride_height, c.stride_width],
                    [c.padding_values.height, c.padding_values.width],
                    [c.dilation_height, c.dilation_width],
                ],
                act: [c.quantized_activation_min, c.quantized_activation_max],
                dims: [c.input_shape, [1, kh, kw, oc], [1, 1, 1, oc], c.output_shape],
                wrapper: "arm_depthwise_conv_wrapper_s8",
                rows: "tq_cmsis_dwconv_rows",
                band_pixels: 16,
                pointwise: None,
            };
            call.emit(e, p, w, banded, &ctx, x, y);
        }
        StepKind::FullyConnected(f, filter, b) => {
            let w = PerChannel { multiplier: &[f.output_multiplier], shift: &[f.output_shift], filter, bias: *b };
            let s = &f.shape;
            fully_connected(
                e,
                p,
                &w,
                [f.input_offset, f.weights_offset, f.output_offset],
                [s.batches, s.accum_depth, s.output_depth],
                (f.quantized_activation_min, f.quantized_activation_max),
                false,
                x,
                y,
            );
        }
        StepKind::FullyConnectedPerChannel(f, w) => {
            let s = &f.shape;
            fully_connected(
                e,
                p,
                w,
                [f.input_offset, 0, f.output_offset],
                [s.batches, s.accum_depth, s.output_depth],
                (f.quantized_activation_min, f.quantized_activation_max),
                true,
                x,
                y,
            );
        }
        StepKind::Add { params: a, .. } => {
            e.line(add_call(a, x, &ops.inputs[1], y, &ops.output_len.to_string()));
        }
        StepKind::MaxPool(q) | StepKind::AveragePool(q) => {
            let [n, ih, iw, c] = q.input_shape;
            let [_, oh, ow, _] = q.output_shape;
            let _ = writeln!(
                e.defs,
                "static const cmsis_nn_pool_params {p}_pp = {{{{{}, {}}}, {{{}, {}}}, {{{}, {}}}}};\n\
                 static const cmsis_nn_dims {p}_id = {}, {p}_fd = {}, {p}_od = {};",
                q.stride_width,
                q.stride_height,
                q.padding_values.width,
                q.padding_values.height,
                q.quantized_activation_min,
                q.quantized_activation_max,
                dims([n, ih, iw, c]),
                dims([1, q.filter_height, q.filter_width, 1]),
                dims([n, oh, ow, c])
            );
            let f = if matches!(step.kind, StepKind::MaxPool(_)) { "arm_max_pool_s8" } else { "arm_avgpool_s8" };
            e.line(format!(
                "{{ cmsis_nn_context ctx = {ctx}; {f}(&ctx, &{p}_pp, &{p}_id, {x}, &{p}_fd, &{p}_od, {y}); }}"
            ));
        }
        _ => unreachable!("cmsis::plan accepted only the kinds above"),
    }
}

/// CMSIS-NN's elementwise int8 ADD of `len` elements.
pub fn add_call(a: &tinyq_kernels::add::AddParams, x: &str, x2: &str, y: &str, len: &str) -> String {
    format!(
        "arm_elementwise_add_s8({x}, {x2}, {}, {}, {}, {}, {}, {}, {}, {y}, {}, {}, {}, {}, {}, {len});",
        a.input1_offset,
        a.input1_multiplier,
        a.input1_shift,
        a.input2_offset,
        a.input2_multiplier,
        a.input2_shift,
        a.left_shift,
        a.output_offset,
        a.output_multiplier,
        a.output_shift,
        a.quantized_activation_min,
        a.quantized_activation_max
    )
}

fn weights(e: &mut Emitted, p: &str, w: &PerChannel<'_>) {
    e.per_channel(p, w);
}

fn bias(p: &str, w: &PerChannel<'_>) -> String {
    if w.bias.is_some() {
        format!("{p}_b")
    } else {
        "NULL".into()
    }
}

fn shapes(e: &mut Emitted, p: &str, input: [usize; 4], filter: [usize; 4], bias: [usize; 4], output: [usize; 4]) {
    let _ = writeln!(
        e.defs,
        "static const cmsis_nn_dims {p}_id = {}, {p}_fd = {}, {p}_bd = {}, {p}_od = {};",
        dims(input),
        dims(filter),
        dims(bias),
        dims(output)
    );
}

/// FULLY_CONNECTED as TFLM's CMSIS-NN kernel calls it on a Cortex-M with DSP: the wrapper, no
/// kernel sums (its buffer size is 0 there).
#[allow(clippy::too_many_arguments)]
fn fully_connected(
    e: &mut Emitted,
    p: &str,
    w: &PerChannel<'_>,
    [input_offset, filter_offset, output_offset]: [i32; 3],
    [batches, depth, units]: [usize; 3],
    (act_min, act_max): (i32, i32),
    per_channel: bool,
    x: &str,
    y: &str,
) {
    weights(e, p, w);
    let _ = writeln!(
        e.defs,
        "static const cmsis_nn_fc_params {p}_fp = {{{input_offset}, {filter_offset}, {output_offset}, {{{act_min}, {act_max}}}}};\n\
         static const cmsis_nn_dims {p}_id = {}, {p}_fd = {}, {p}_bd = {}, {p}_od = {};",
        dims([batches, 1, 1, depth]),
        dims([depth, 1, 1, units]),
        dims([1, 1, 1, units]),
        dims([batches, 1, 1, units])
    );
    e.line(format!(
        "{{ cmsis_nn_context ctx = {{NULL, 0}}; cmsis_nn_quant_params q = {{(int32_t *){p}_m, (int32_t *){p}_s, {}}}; \
         arm_fully_connected_wrapper_s8(&ctx, &{p}_fp, &q, &{p}_id, {x}, &{p}_fd, {p}_w, &{p}_bd, {}, &{p}_od, {y}); }}",
        per_channel as i32,
        bias(p, w)
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Channel `c`'s dot product with the pixel `x` as `tq_pointwise.c` reads the layout: the
    /// block of `c`, four columns at a time as lanes {x[k], x[k+2]}, {x[k+1], x[k+3]} against
    /// the row's two words, then the tail, one value per row of the block.
    fn kernel_dot(layout: &[i16], x: &[i8], rows: usize, cols: usize, c: usize) -> i32 {
        let (c0, n) = (c / 2 * 2, if c / 2 * 2 + 1 < rows { 2 } else { 1 });
        let mut w = &layout[c0 * cols..];
        let mut acc = 0i32;
        for k in (0..cols / 4 * 4).step_by(4) {
            for j in 0..n {
                let v = &w[..4];
                if c0 + j == c {
                    let xs = [x[k], x[k + 2], x[k + 1], x[k + 3]];
                    acc += xs.iter().zip(v).map(|(&a, &b)| a as i32 * b as i32).sum::<i32>();
                }
                w = &w[4..];
            }
        }
        for &xk in &x[cols / 4 * 4..] {
            for j in 0..n {
                if c0 + j == c {
                    acc += xk as i32 * w[0] as i32;
                }
                w = &w[1..];
            }
        }
        acc
    }

    #[test]
    fn the_pointwise_layout_gives_every_row_its_own_dot_product() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 24) as i8
        };
        for rows in 1..=7 {
            for cols in 1..=13 {
                let filter: Vec<i8> = (0..rows * cols).map(|_| next()).collect();
                let x: Vec<i8> = (0..cols).map(|_| next()).collect();
                let layout = pointwise_weights(&filter, rows, cols);
                assert_eq!(layout.len(), rows * cols);
                for c in 0..rows {
                    let want: i32 = (0..cols).map(|k| x[k] as i32 * filter[c * cols + k] as i32).sum();
                    assert_eq!(kernel_dot(&layout, &x, rows, cols, c), want, "rows {rows} cols {cols} c {c}");
                }
            }
        }
    }

    #[test]
    fn the_folded_bias_wraps_as_the_device_does() {
        // Two channels of 3 columns; the second's bias is near i32::MAX, so the sum wraps.
        let filter = [-128i8, -128, -128, 127, 127, 127];
        let bias = [5, i32::MAX - 10];
        let got = folded_bias(&filter, Some(&bias), 128, 2, 3);
        let want: Vec<i32> = [(5i64, -384i64), ((i32::MAX - 10) as i64, 381)]
            .iter()
            .map(|&(b, s)| (b + 128 * s) as u32 as i32)
            .collect();
        assert_eq!(got, want);
        assert_eq!(folded_bias(&filter, None, -3, 2, 3), vec![1152, -1143]);
    }
}
