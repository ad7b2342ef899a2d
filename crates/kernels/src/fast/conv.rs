//! CONV_2D as a GEMM: the bit-identical fast form of [`crate::conv::conv_per_channel`].
//!
//! Each group's filter `[fpg, KH, KW, Cin/groups]` is packed once as the right-hand matrix
//! (depth `KH · KW · Cin/groups`, in the filter's own order). At run time each sample is written
//! once into a padded image ([`super::patches`]) as int16 `x + input_offset` (0 in the border: the
//! taps the reference skips add 0). Without groups and with dilation 1 along the width, a patch
//! is `filter_height` runs of `filter_width · in_depth` values in the image, and the GEMM reads
//! them there, [`MR`] output pixels at a time (an indirect GEMM: the filter is packed run by run);
//! otherwise the patches are copied out of the image first.
//!
//! On [`Isa::Avx512Vnni`] the filter is packed in bytes instead and the image holds bytes
//! (`x ^ 0x80`, the border the byte whose `x + input_offset` is 0) for the VNNI GEMM
//! ([`super::vnni`]), with the offset's share of every sum folded into the bias.

use super::gemm::{gemm_rows, PackedB, Rows, MR};
use super::patches::PaddedImage;
use super::stage::OutputStage;
use super::vnni::{self, PackedQ};
use super::Isa;
use crate::conv::ConvPerChannelParams;
use crate::fixedpoint::Rounding;

/// Bytes after the image that the indirect GEMM may read (a run's padding to a whole pair of
/// quads).
const RUN_SLACK: usize = 7;

/// The bias a group's output stage adds, from the group's index and its slice of the bias.
type GroupBias<'a> = dyn Fn(usize, Option<&[i32]>) -> Option<Vec<i32>> + 'a;

/// A CONV_2D prepared for [`ConvFast::eval`].
#[derive(Clone, Debug)]
pub struct ConvFast {
    params: ConvPerChannelParams,
    isa: Isa,
    gemms: Gemms,
    image: PaddedImage,
}

/// One packed filter and output stage per group, for one of the two GEMMs. With `offsets`
/// (where each filter row's run starts, from a pixel's origin in the image), one group read in
/// the image; without, patches copied out of it.
#[derive(Clone, Debug)]
enum Gemms {
    /// int16 operands ([`super::gemm`]).
    Wide { groups: Vec<(PackedB, OutputStage)>, offsets: Option<Vec<usize>> },
    /// Bytes ([`super::vnni`]); padding taps are `pad`.
    Bytes { groups: Vec<(PackedQ, OutputStage)>, pad: u8, offsets: Option<Vec<usize>> },
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
        let image = PaddedImage::new(params);
        let indirect = groups == 1 && params.dilation_width == 1;
        let (runs, run) = if indirect { (filter_height, depth / filter_height) } else { (1, depth) };
        let offsets = indirect.then(|| (0..runs).map(|y| y * params.dilation_height * image.line()).collect());
        let gemms = match vnni::pad_byte(params.input_offset).filter(|_| isa == Isa::Avx512Vnni) {
            Some(pad) => {
                let filters: Vec<PackedQ> =
                    (0..groups).map(|g| PackedQ::runs(runs, run, per_group, |k, n| weight(g, k, n))).collect();
                let stages = stages(&|g| filters[g].padded_n(), &|g, bias| {
                    Some(filters[g].folded_bias(bias, params.input_offset))
                })?;
                Gemms::Bytes { groups: filters.into_iter().zip(stages).collect(), pad, offsets }
            }
            None => {
                let filters: Vec<PackedB> =
                    (0..groups).map(|g| PackedB::runs(runs, run, per_group, |k, n| weight(g, k, n) as i16)).collect();
                let stages = stages(&|g| filters[g].padded_n(), &|_, bias| bias.map(<[i32]>::to_vec))?;
                Gemms::Wide { groups: filters.into_iter().zip(stages).collect(), offsets }
            }
        };
        Some(ConvFast { params: *params, isa, gemms, image })
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
            Gemms::Wide { offsets: Some(_), .. } => self.image.len() + 1,
            Gemms::Wide { groups, .. } => self.image.len() + MR * groups[0].0.kp,
            Gemms::Bytes { offsets: Some(_), .. } => (self.image.len() + RUN_SLACK).div_ceil(2),
            Gemms::Bytes { groups, .. } => (self.image.len() + vnni::MR * groups[0].0.k4).div_ceil(2),
        }
    }

    /// The output of `input` (any number of samples of the prepared shape, back to back).
    ///
    /// # Panics
    /// If `input` is not whole samples, `output` does not match, or `scratch` is short.
    pub fn eval(&self, input: &[i8], scratch: &mut [i16], output: &mut [i8]) {
        let out_depth = self.params.filter_shape[0];
        let widen = |x: i8| (x as i32 + self.params.input_offset) as i16;
        match &self.gemms {
            Gemms::Wide { groups, offsets: Some(offsets) } => {
                let image = &mut scratch[..self.image.len() + 1];
                self.eval_indirect(widen, 0, offsets, MR, input, image, output, |rows, out| {
                    gemm_rows(self.isa, &groups[0].0, &groups[0].1, rows, out, out_depth)
                });
            }
            Gemms::Wide { groups, offsets: None } => {
                let rows = Patches { pad: 0, len: groups[0].0.kp, count: MR };
                self.eval_with(rows, widen, input, scratch, output, |g, a, n, out| {
                    let rows = Rows::contiguous(a, groups[g].0.kp, n);
                    gemm_rows(self.isa, &groups[g].0, &groups[g].1, &rows, out, out_depth)
                });
            }
            Gemms::Bytes { groups, pad, offsets: Some(offsets) } => {
                let image = &mut vnni::as_bytes(scratch)[..self.image.len() + RUN_SLACK];
                self.eval_indirect(vnni::to_byte, *pad, offsets, vnni::MR, input, image, output, |rows, out| {
                    // SAFETY: `Gemms::Bytes` is only built on `Isa::Avx512Vnni`, after detection.
                    unsafe { vnni::gemm_rows(&groups[0].0, &groups[0].1, rows, out, out_depth) }
                });
            }
            Gemms::Bytes { groups, pad, offsets: None } => {
                let rows = Patches { pad: *pad, len: groups[0].0.k4, count: vnni::MR };
                let scratch = vnni::as_bytes(scratch);
                self.eval_with(rows, vnni::to_byte, input, scratch, output, |g, a, n, out| {
                    let rows = Rows::contiguous(a, groups[g].0.k4, n);
                    // SAFETY: `Gemms::Bytes` is only built on `Isa::Avx512Vnni`, after detection.
                    unsafe { vnni::gemm_rows(&groups[g].0, &groups[g].1, &rows, out, out_depth) }
                });
            }
        }
    }

    /// [`ConvFast::eval`] of an indirect GEMM, one sample at a time: the sample's padded image
    /// (each value converted, the border `pad`), then `count` output pixels at a time multiplied
    /// where their patches lie by `gemm(rows, output)`.
    #[allow(clippy::too_many_arguments)]
    fn eval_indirect<T: Copy>(
        &self,
        convert: impl Fn(i8) -> T + Copy,
        pad: T,
        offsets: &[usize],
        count: usize,
        input: &[i8],
        image: &mut [T],
        output: &mut [i8],
        gemm: impl Fn(&Rows<T>, &mut [i8]),
    ) {
        let p = &self.params;
        let out_depth = p.filter_shape[0];
        let [_, out_height, out_width, _] = p.output_shape;
        let pixels = out_height * out_width;
        let sample = p.input_shape[1..].iter().product::<usize>();
        assert!(sample > 0 && input.len().is_multiple_of(sample));
        assert_eq!(output.len(), input.len() / sample * pixels * out_depth);
        for (x, y) in input.chunks_exact(sample).zip(output.chunks_exact_mut(pixels * out_depth)) {
            self.image.fill(x, convert, pad, &mut image[..self.image.len()]);
            // One `Rows`, updated in place (copies of its starts cost more than the GEMM of a
            // thin layer).
            let mut rows = Rows { a: &*image, starts: [0; vnni::MR], count: 0, offsets };
            let (mut out_y, mut out_x, mut origin) = (0, 0, 0);
            let (step_x, step_y) = (self.image.origin(0, 1), self.image.origin(1, 0));
            for first in (0..pixels).step_by(count) {
                rows.count = count.min(pixels - first);
                for start in &mut rows.starts[..rows.count] {
                    *start = origin + out_x * step_x;
                    out_x += 1;
                    if out_x == out_width {
                        (out_x, out_y) = (0, out_y + 1);
                        origin = out_y * step_y;
                    }
                }
                gemm(&rows, &mut y[first * out_depth..]);
            }
        }
    }

    /// [`ConvFast::eval`] with copied patches, one sample at a time: the sample's padded image,
    /// then for each group `rows.count` patches at a time (`rows.len` values each) multiplied by
    /// `gemm(group, patches, patch count, output)`.
    fn eval_with<T: Copy>(
        &self,
        rows: Patches<T>,
        convert: impl Fn(i8) -> T + Copy,
        input: &[i8],
        scratch: &mut [T],
        output: &mut [i8],
        gemm: impl Fn(usize, &[T], usize, &mut [i8]),
    ) {
        let p = &self.params;
        let [out_depth, filter_height, filter_width, filter_in_depth] = p.filter_shape;
        let [_, out_height, out_width, _] = p.output_shape;
        let (depth, pixels) = (filter_height * filter_width * filter_in_depth, out_height * out_width);
        let sample = p.input_shape[1..].iter().product::<usize>();
        assert!(sample > 0 && input.len().is_multiple_of(sample));
        assert_eq!(output.len(), input.len() / sample * pixels * out_depth);
        let groups = p.input_shape[3] / filter_in_depth;
        let per_group = out_depth / groups;
        let (image, patches) = scratch.split_at_mut(self.image.len());
        let patches = &mut patches[..rows.count * rows.len];
        for (x, y) in input.chunks_exact(sample).zip(output.chunks_exact_mut(pixels * out_depth)) {
            self.image.fill(x, convert, rows.pad, image);
            for g in 0..groups {
                let (mut out_y, mut out_x) = (0, 0);
                for first in (0..pixels).step_by(rows.count) {
                    let n = rows.count.min(pixels - first);
                    for row in patches.chunks_exact_mut(rows.len).take(n) {
                        self.image.patch(image, out_y, out_x, g * filter_in_depth, &mut row[..depth]);
                        out_x += 1;
                        if out_x == out_width {
                            (out_x, out_y) = (0, out_y + 1);
                        }
                    }
                    gemm(g, patches, n, &mut y[first * out_depth + g * per_group..]);
                }
            }
        }
    }
}

/// How [`ConvFast::eval_with`] lays out patches for a GEMM: the value that adds 0, the row length
/// (the packed depth), and rows per GEMM call.
#[derive(Clone, Copy)]
struct Patches<T> {
    pad: T,
    len: usize,
    count: usize,
}
