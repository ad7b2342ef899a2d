//! CONV_2D as a GEMM: the bit-identical fast form of [`crate::conv::conv_per_channel`].
//!
//! Each group's filter `[fpg, KH, KW, Cin/groups]` is packed once as the right-hand matrix
//! (depth `KH · KW · Cin/groups`, in the filter's own order). At run time [`MR`] output pixels at a
//! time are gathered into `scratch` as int16 rows of `x + input_offset` (0 where a tap falls in
//! the padding, which the reference skips), and multiplied by the packed filter. A 1x1 conv with
//! stride 1 and no padding gathers a plain converted copy of its input rows.

use super::gemm::{gemm_rows, PackedB, MR};
use super::stage::OutputStage;
use super::Isa;
use crate::conv::ConvPerChannelParams;
use crate::fixedpoint::Rounding;

/// A CONV_2D prepared for [`ConvFast::eval`].
#[derive(Clone, Debug)]
pub struct ConvFast {
    params: ConvPerChannelParams,
    isa: Isa,
    /// One packed filter and output stage per group.
    groups: Vec<(PackedB, OutputStage)>,
}

impl ConvFast {
    /// Packs the filter of a CONV_2D prepared by [`crate::conv::prepare_conv_per_channel`] (the
    /// same multipliers, shifts, filter and bias the reference kernel takes). `None` when the fast
    /// path does not cover the params (single rounding, or multipliers TFLM never produces).
    pub fn new(
        params: &ConvPerChannelParams,
        output_multiplier: &[i32],
        output_shift: &[i32],
        filter: &[i8],
        bias: Option<&[i32]>,
        isa: Isa,
    ) -> Option<ConvFast> {
        if params.rounding != Rounding::Double {
            return None;
        }
        let [out_depth, filter_height, filter_width, filter_in_depth] = params.filter_shape;
        assert_eq!(filter.len(), params.filter_shape.iter().product::<usize>());
        let groups = params.input_shape[3] / filter_in_depth;
        let per_group = out_depth / groups;
        let depth = filter_height * filter_width * filter_in_depth;
        let groups = (0..groups)
            .map(|g| {
                let channels = g * per_group..(g + 1) * per_group;
                let b = PackedB::new(depth, per_group, |k, n| filter[(g * per_group + n) * depth + k] as i16);
                let stage = OutputStage::new(
                    b.padded_n(),
                    bias.map(|b| &b[channels.clone()]),
                    &output_multiplier[channels.clone()],
                    &output_shift[channels],
                    params.output_offset,
                    params.quantized_activation_min,
                    params.quantized_activation_max,
                )?;
                Some((b, stage))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(ConvFast { params: *params, isa: isa.checked(), groups })
    }

    pub fn params(&self) -> &ConvPerChannelParams {
        &self.params
    }

    /// The path this kernel runs on.
    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// The int16 scratch [`ConvFast::eval`] needs.
    pub fn scratch_len(&self) -> usize {
        MR * self.groups[0].0.kp
    }

    /// The output of `input` (any number of samples of the prepared shape, back to back).
    ///
    /// # Panics
    /// If `input` is not whole samples, `output` does not match, or `scratch` is short.
    pub fn eval(&self, input: &[i8], scratch: &mut [i16], output: &mut [i8]) {
        let p = &self.params;
        let [_, in_height, in_width, in_depth] = p.input_shape;
        let [out_depth, filter_height, filter_width, filter_in_depth] = p.filter_shape;
        let [_, out_height, out_width, _] = p.output_shape;
        let sample = in_height * in_width * in_depth;
        assert!(sample > 0 && input.len().is_multiple_of(sample));
        let pixels = input.len() / sample * out_height * out_width;
        assert_eq!(output.len(), pixels * out_depth);
        let kp = self.groups[0].0.kp;
        let scratch = &mut scratch[..MR * kp];
        let per_group = out_depth / self.groups.len();
        let pointwise = filter_height == 1
            && filter_width == 1
            && p.stride_height == 1
            && p.stride_width == 1
            && p.padding_values.height == 0
            && p.padding_values.width == 0
            && self.groups.len() == 1;
        for (g, (b, stage)) in self.groups.iter().enumerate() {
            for first in (0..pixels).step_by(MR) {
                let rows = MR.min(pixels - first);
                for r in 0..rows {
                    let row = &mut scratch[r * kp..(r + 1) * kp];
                    let pixel = first + r;
                    if pointwise {
                        let x = &input[pixel * in_depth..(pixel + 1) * in_depth];
                        for (d, &x) in row.iter_mut().zip(x) {
                            *d = (x as i32 + p.input_offset) as i16;
                        }
                    } else {
                        self.gather(input, pixel, g * filter_in_depth, row);
                    }
                    row[filter_height * filter_width * filter_in_depth..].fill(0);
                }
                let out = &mut output[first * out_depth + g * per_group..];
                gemm_rows(self.isa, b, stage, scratch, rows, out, out_depth);
            }
        }
    }

    /// The patch of output pixel `pixel` (batch-major), channels `channel0..` of each tap.
    fn gather(&self, input: &[i8], pixel: usize, channel0: usize, row: &mut [i16]) {
        let p = &self.params;
        let [_, in_height, in_width, in_depth] = p.input_shape;
        let [_, filter_height, filter_width, filter_in_depth] = p.filter_shape;
        let [_, out_height, out_width, _] = p.output_shape;
        let (batch, rest) = (pixel / (out_height * out_width), pixel % (out_height * out_width));
        let (out_y, out_x) = (rest / out_width, rest % out_width);
        let in_y0 = (out_y * p.stride_height) as isize - p.padding_values.height as isize;
        let in_x0 = (out_x * p.stride_width) as isize - p.padding_values.width as isize;
        for filter_y in 0..filter_height {
            let in_y = in_y0 + (filter_y * p.dilation_height) as isize;
            for filter_x in 0..filter_width {
                let in_x = in_x0 + (filter_x * p.dilation_width) as isize;
                let tap = &mut row[(filter_y * filter_width + filter_x) * filter_in_depth..][..filter_in_depth];
                if in_y < 0 || in_y >= in_height as isize || in_x < 0 || in_x >= in_width as isize {
                    tap.fill(0);
                    continue;
                }
                let base = ((batch * in_height + in_y as usize) * in_width + in_x as usize) * in_depth + channel0;
                for (d, &x) in tap.iter_mut().zip(&input[base..base + filter_in_depth]) {
                    *d = (x as i32 + p.input_offset) as i16;
                }
            }
        }
    }
}
