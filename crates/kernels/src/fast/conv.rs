//! CONV_2D as a GEMM: the bit-identical fast form of [`crate::conv::conv_per_channel`].
//!
//! Each group's filter `[fpg, KH, KW, Cin/groups]` is packed once as the right-hand matrix
//! (depth `KH · KW · Cin/groups`, in the filter's own order). At run time [`MR`] output pixels at a
//! time are gathered into `scratch` as int16 rows of `x + input_offset` (0 where a tap falls in
//! the padding, which the reference skips), and multiplied by the packed filter.
//!
//! On [`Isa::Avx512Vnni`] the filter is packed in bytes instead and the patches copied as bytes
//! from a padded image of each sample ([`super::patches`]: `x ^ 0x80`, padding as the byte whose
//! `x + input_offset` is 0) for the VNNI GEMM ([`super::vnni`]), with the offset's share of every
//! sum folded into the bias. A 1x1 conv with stride 1 and no padding multiplies the image rows as
//! they are.

use super::depthwise_conv::in_image;
use super::gemm::{gemm_rows, PackedB, MR};
use super::patches::PaddedImage;
use super::stage::OutputStage;
use super::vnni::{self, PackedQ};
use super::Isa;
use crate::conv::ConvPerChannelParams;
use crate::fixedpoint::Rounding;

/// The bias a group's output stage adds, from the group's index and its slice of the bias.
type GroupBias<'a> = dyn Fn(usize, Option<&[i32]>) -> Option<Vec<i32>> + 'a;

/// A CONV_2D prepared for [`ConvFast::eval`].
#[derive(Clone, Debug)]
pub struct ConvFast {
    params: ConvPerChannelParams,
    isa: Isa,
    gemms: Gemms,
}

/// One packed filter and output stage per group, for one of the two GEMMs.
#[derive(Clone, Debug)]
enum Gemms {
    /// int16 operands ([`super::gemm`]).
    Wide(Vec<(PackedB, OutputStage)>),
    /// Bytes ([`super::vnni`]); padding taps are `pad`.
    Bytes { groups: Vec<(PackedQ, OutputStage)>, pad: u8, image: PaddedImage },
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
        // Each group's output stage, from its packed filter's padded width and the bias it adds
        // (`bias_of` of the group and its slice of `bias`).
        let stages = |padded_n: &dyn Fn(usize) -> usize, bias_of: &GroupBias| {
            (0..groups)
                .map(|g| {
                    let channels = g * per_group..(g + 1) * per_group;
                    OutputStage::new(
                        padded_n(g),
                        bias_of(g, bias.map(|b| &b[channels.clone()])).as_deref(),
                        &output_multiplier[channels.clone()],
                        &output_shift[channels],
                        params.output_offset,
                        params.quantized_activation_min,
                        params.quantized_activation_max,
                    )
                })
                .collect::<Option<Vec<_>>>()
        };
        let weight = |g: usize, k: usize, n: usize| filter[(g * per_group + n) * depth + k];
        let gemms = match vnni::pad_byte(params.input_offset).filter(|_| isa == Isa::Avx512Vnni) {
            Some(pad) => {
                let filters: Vec<PackedQ> =
                    (0..groups).map(|g| PackedQ::new(depth, per_group, |k, n| weight(g, k, n))).collect();
                let stages = stages(&|g| filters[g].padded_n(), &|g, bias| {
                    Some(filters[g].folded_bias(bias, params.input_offset))
                })?;
                Gemms::Bytes { groups: filters.into_iter().zip(stages).collect(), pad, image: PaddedImage::new(params) }
            }
            None => {
                let filters: Vec<PackedB> =
                    (0..groups).map(|g| PackedB::new(depth, per_group, |k, n| weight(g, k, n) as i16)).collect();
                let stages = stages(&|g| filters[g].padded_n(), &|_, bias| bias.map(<[i32]>::to_vec))?;
                Gemms::Wide(filters.into_iter().zip(stages).collect())
            }
        };
        Some(ConvFast { params: *params, isa, gemms })
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
        match &self.gemms {
            Gemms::Wide(groups) => MR * groups[0].0.kp,
            Gemms::Bytes { groups, image, .. } => (image.len() + vnni::MR * groups[0].0.k4).div_ceil(2),
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
        let groups = match &self.gemms {
            Gemms::Wide(groups) => groups,
            Gemms::Bytes { groups, pad, image } => {
                return self.eval_bytes(groups, *pad, image, input, vnni::as_bytes(scratch), output);
            }
        };
        let per_group = out_depth / groups.len();
        for (g, (b, stage)) in groups.iter().enumerate() {
            let kp = b.kp;
            let scratch = &mut scratch[..MR * kp];
            let mut at = Pixel::default();
            for first in (0..pixels).step_by(MR) {
                let rows = MR.min(pixels - first);
                for row in scratch.chunks_exact_mut(kp).take(rows) {
                    self.gather(input, at, g * filter_in_depth, &mut row[..depth]);
                    at.advance(out_height, out_width);
                    row[depth..].fill(0);
                }
                let out = &mut output[first * out_depth + g * per_group..];
                gemm_rows(self.isa, b, stage, scratch, rows, out, out_depth);
            }
        }
    }

    /// [`ConvFast::eval`] on the byte GEMM, one sample at a time.
    fn eval_bytes(
        &self,
        groups: &[(PackedQ, OutputStage)],
        pad: u8,
        image: &PaddedImage,
        input: &[i8],
        scratch: &mut [u8],
        output: &mut [i8],
    ) {
        let p = &self.params;
        let [out_depth, filter_height, filter_width, filter_in_depth] = p.filter_shape;
        let [_, out_height, out_width, _] = p.output_shape;
        let (depth, pixels) = (filter_height * filter_width * filter_in_depth, out_height * out_width);
        let per_group = out_depth / groups.len();
        let (pixels_in, rows) = scratch.split_at_mut(image.len());
        let direct = image.is_direct();
        let samples = input.chunks_exact(p.input_shape[1..].iter().product());
        for (x, y) in samples.zip(output.chunks_exact_mut(pixels * out_depth)) {
            image.fill(x, pad, pixels_in);
            for (g, (b, stage)) in groups.iter().enumerate() {
                let k4 = b.k4;
                let rows = &mut rows[..vnni::MR * k4];
                let (mut out_y, mut out_x) = (0, 0);
                for first in (0..pixels).step_by(vnni::MR) {
                    let n = vnni::MR.min(pixels - first);
                    let a = if direct {
                        &pixels_in[first * k4..]
                    } else {
                        for row in rows.chunks_exact_mut(k4).take(n) {
                            image.patch(pixels_in, out_y, out_x, g * filter_in_depth, &mut row[..depth]);
                            out_x += 1;
                            if out_x == out_width {
                                (out_x, out_y) = (0, out_y + 1);
                            }
                        }
                        &rows[..]
                    };
                    vnni::gemm_rows(b, stage, a, n, &mut y[first * out_depth + g * per_group..], out_depth);
                }
            }
        }
    }

    /// The patch of output pixel `at` as int16 `x + input_offset` (0 in the padding), channels
    /// `channel0..` of each tap.
    #[inline(always)]
    fn gather(&self, input: &[i8], at: Pixel, channel0: usize, row: &mut [i16]) {
        let (convert, pad) = (|x: i8| (x as i32 + self.params.input_offset) as i16, 0);
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
