//! CONV_2D as a GEMM: the bit-identical fast form of [`crate::conv::conv_per_channel`].
//!
//! Each group's filter `[fpg, KH, KW, Cin/groups]` is packed once as the right-hand matrix
//! (depth `KH · KW · Cin/groups`, in the filter's own order). At run time [`MR`] output pixels at a
//! time are gathered into `scratch` as int16 rows of `x + input_offset` (0 where a tap falls in
//! the padding, which the reference skips), and multiplied by the packed filter. A 1x1 conv with
//! stride 1 and no padding gathers a plain converted copy of its input rows.
//!
//! On [`Isa::Avx512Vnni`] the filter is packed in bytes instead and the patches gathered as bytes
//! (`x ^ 0x80`, padding taps as the byte whose `x + input_offset` is 0) for the VNNI GEMM
//! ([`super::vnni`]), with the offset's share of every sum folded into the bias.

use super::depthwise_conv::in_image;
use super::gemm::{gemm_rows, PackedB, MR};
use super::stage::OutputStage;
use super::vnni::{self, PackedQ};
use super::Isa;
use crate::conv::ConvPerChannelParams;
use crate::fixedpoint::Rounding;

/// A CONV_2D prepared for [`ConvFast::eval`].
#[derive(Clone, Debug)]
pub struct ConvFast {
    params: ConvPerChannelParams,
    isa: Isa,
    /// One packed filter and output stage per group.
    groups: Vec<(Packed, OutputStage)>,
}

/// A group's filter, packed for one of the two GEMMs.
#[derive(Clone, Debug)]
enum Packed {
    /// int16 operands ([`super::gemm`]).
    Wide(PackedB),
    /// Bytes ([`super::vnni`]), patches gathered with padding taps stored as `pad`.
    Bytes { b: PackedQ, pad: u8 },
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
        let isa = isa.checked();
        let pad = vnni::pad_byte(params.input_offset).filter(|_| isa == Isa::Avx512Vnni);
        let groups = (0..groups)
            .map(|g| {
                let channels = g * per_group..(g + 1) * per_group;
                let bias = bias.map(|b| &b[channels.clone()]);
                let weight = |k: usize, n: usize| filter[(g * per_group + n) * depth + k];
                let (padded_n, bias, packed) = match pad {
                    Some(pad) => {
                        let b = PackedQ::new(depth, per_group, weight);
                        let folded = b.folded_bias(bias, params.input_offset);
                        (b.padded_n(), Some(folded), Packed::Bytes { b, pad })
                    }
                    None => {
                        let b = PackedB::new(depth, per_group, |k, n| weight(k, n) as i16);
                        (b.padded_n(), bias.map(<[i32]>::to_vec), Packed::Wide(b))
                    }
                };
                let stage = OutputStage::new(
                    padded_n,
                    bias.as_deref(),
                    &output_multiplier[channels.clone()],
                    &output_shift[channels],
                    params.output_offset,
                    params.quantized_activation_min,
                    params.quantized_activation_max,
                )?;
                Some((packed, stage))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(ConvFast { params: *params, isa, groups })
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
        match &self.groups[0].0 {
            Packed::Wide(b) => MR * b.kp,
            Packed::Bytes { b, .. } => (vnni::MR * b.k4).div_ceil(2),
        }
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
        let depth = filter_height * filter_width * filter_in_depth;
        let per_group = out_depth / self.groups.len();
        for (g, (packed, stage)) in self.groups.iter().enumerate() {
            let channel0 = g * filter_in_depth;
            match packed {
                Packed::Wide(b) => {
                    let kp = b.kp;
                    let scratch = &mut scratch[..MR * kp];
                    let mut at = Pixel::default();
                    for first in (0..pixels).step_by(MR) {
                        let rows = MR.min(pixels - first);
                        for row in scratch.chunks_exact_mut(kp).take(rows) {
                            let convert = |x: i8| (x as i32 + p.input_offset) as i16;
                            self.gather(input, at, channel0, &mut row[..depth], convert, 0);
                            at.advance(out_height, out_width);
                            row[depth..].fill(0);
                        }
                        let out = &mut output[first * out_depth + g * per_group..];
                        gemm_rows(self.isa, b, stage, scratch, rows, out, out_depth);
                    }
                }
                Packed::Bytes { b, pad } => {
                    let k4 = b.k4;
                    let scratch = &mut vnni::as_bytes(scratch)[..vnni::MR * k4];
                    let mut at = Pixel::default();
                    for first in (0..pixels).step_by(vnni::MR) {
                        let rows = vnni::MR.min(pixels - first);
                        for row in scratch.chunks_exact_mut(k4).take(rows) {
                            self.gather(input, at, channel0, &mut row[..depth], vnni::to_byte, *pad);
                            at.advance(out_height, out_width);
                        }
                        let out = &mut output[first * out_depth + g * per_group..];
                        vnni::gemm_rows(b, stage, scratch, rows, out, out_depth);
                    }
                }
            }
        }
    }

    /// The patch of output pixel `at`, channels `channel0..` of each tap, each
    /// value converted by `convert`, taps in the padding `pad`.
    #[inline(always)]
    fn gather<T: Copy>(
        &self,
        input: &[i8],
        at: Pixel,
        channel0: usize,
        row: &mut [T],
        convert: impl Fn(i8) -> T,
        pad: T,
    ) {
        let p = &self.params;
        let [_, in_height, in_width, in_depth] = p.input_shape;
        let [_, filter_height, filter_width, filter_in_depth] = p.filter_shape;
        let Pixel { batch, y: out_y, x: out_x } = at;
        let in_y0 = (out_y * p.stride_height) as isize - p.padding_values.height as isize;
        let in_x0 = (out_x * p.stride_width) as isize - p.padding_values.width as isize;
        let ys = in_image(in_y0, p.dilation_height, filter_height, in_height);
        let xs = in_image(in_x0, p.dilation_width, filter_width, in_width);
        let tap_row = filter_width * filter_in_depth;
        for (filter_y, taps) in row.chunks_exact_mut(tap_row).enumerate() {
            if !ys.contains(&filter_y) {
                taps.fill(pad);
                continue;
            }
            let in_y = (in_y0 + (filter_y * p.dilation_height) as isize) as usize;
            let line = &input[(batch * in_height + in_y) * in_width * in_depth..][..in_width * in_depth];
            if xs.start > 0 || xs.end < filter_width {
                taps[..xs.start * filter_in_depth].fill(pad);
                taps[xs.end * filter_in_depth..].fill(pad);
            }
            let in_x = |filter_x: usize| (in_x0 + (filter_x * p.dilation_width) as isize) as usize;
            if p.dilation_width == 1 && filter_in_depth == in_depth {
                // The in-image taps of this filter row are one run of the input row.
                let run = &mut taps[xs.start * in_depth..xs.end * in_depth];
                let src = &line[in_x(xs.start) * in_depth..][..run.len()];
                for (d, &x) in run.iter_mut().zip(src) {
                    *d = convert(x);
                }
                continue;
            }
            for filter_x in xs.clone() {
                let tap = &mut taps[filter_x * filter_in_depth..][..filter_in_depth];
                let src = &line[in_x(filter_x) * in_depth + channel0..][..filter_in_depth];
                for (d, &x) in tap.iter_mut().zip(src) {
                    *d = convert(x);
                }
            }
        }
    }
}

/// An output pixel, walked in the output's order without divisions.
#[derive(Clone, Copy, Debug, Default)]
struct Pixel {
    batch: usize,
    y: usize,
    x: usize,
}

impl Pixel {
    #[inline(always)]
    fn advance(&mut self, height: usize, width: usize) {
        self.x += 1;
        if self.x == width {
            self.x = 0;
            self.y += 1;
            if self.y == height {
                self.y = 0;
                self.batch += 1;
            }
        }
    }
}
