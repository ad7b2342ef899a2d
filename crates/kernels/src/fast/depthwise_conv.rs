//! DEPTHWISE_CONV_2D, the bit-identical fast form of
//! [`crate::depthwise_conv::depthwise_conv_per_channel`].
//!
//! Each sample's input is first widened into `scratch` as int16 `x + input_offset`, one value
//! per *output* channel (input channel `oc / depth_multiplier`), channels padded with zeros to a
//! multiple of 16. Each output pixel then sums its in-image taps over 16 channels at a time:
//! `vpmullw` of the widened input and the filter (packed once as int16; the product of two
//! operands of at most 9 bits and 8 bits fits in int16 exactly), sign-extended into int32
//! accumulators. Out-of-image taps are skipped, as in the reference. On
//! [`Isa::Avx512Vnni`] with an int8 input zero point, four taps per `vpdpbusd` lane instead
//! ([`super::depthwise_vnni`]); otherwise there the same as AVX2 on 32 channels at a time, with the
//! 16-lane output stage.

use super::depthwise_vnni::DepthwiseBytes;
use super::stage::OutputStage;
use super::Isa;
use crate::depthwise_conv::DepthwiseConvPerChannelParams;
use crate::fixedpoint::Rounding;

/// Channels per vector step (AVX2 and portable).
const LANES: usize = 16;
/// Channels per vector step on AVX-512; the packed channels are padded to a multiple of it.
const WIDE_LANES: usize = 32;

/// A DEPTHWISE_CONV_2D prepared for [`DepthwiseConvFast::eval`].
#[derive(Clone, Debug)]
pub struct DepthwiseConvFast {
    params: DepthwiseConvPerChannelParams,
    isa: Isa,
    /// Output channels padded to a multiple of [`WIDE_LANES`].
    padded: usize,
    /// `[KH · KW][padded]`.
    filter: Vec<i16>,
    stage: OutputStage,
    /// The byte form, on [`Isa::Avx512Vnni`] when it covers the params.
    bytes: Option<Box<DepthwiseBytes>>,
}

impl DepthwiseConvFast {
    /// Packs the filter of a DEPTHWISE_CONV_2D prepared by
    /// [`crate::depthwise_conv::prepare_depthwise_conv_per_channel`]. `None` when the fast path
    /// does not cover the params.
    pub fn new(
        params: &DepthwiseConvPerChannelParams,
        output_multiplier: &[i32],
        output_shift: &[i32],
        filter: &[i8],
        bias: Option<&[i32]>,
        isa: Isa,
    ) -> Option<DepthwiseConvFast> {
        if params.rounding != Rounding::Double {
            return None;
        }
        let [_, filter_height, filter_width, out_depth] = params.filter_shape;
        assert_eq!(filter.len(), filter_height * filter_width * out_depth);
        let padded = out_depth.next_multiple_of(WIDE_LANES);
        let mut packed = vec![0i16; filter_height * filter_width * padded];
        for (tap, w) in filter.chunks_exact(out_depth).enumerate() {
            for (d, &w) in packed[tap * padded..].iter_mut().zip(w) {
                *d = w as i16;
            }
        }
        let stage = OutputStage::new(
            padded,
            bias,
            output_multiplier,
            output_shift,
            params.output_offset,
            params.quantized_activation_min,
            params.quantized_activation_max,
        )?;
        let isa = isa.checked();
        let bytes = (isa == Isa::Avx512Vnni)
            .then(|| DepthwiseBytes::new(params, output_multiplier, output_shift, filter, bias).map(Box::new))
            .flatten();
        Some(DepthwiseConvFast { params: *params, isa, padded, filter: packed, stage, bytes })
    }

    pub fn params(&self) -> &DepthwiseConvPerChannelParams {
        &self.params
    }

    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// The int16 scratch [`DepthwiseConvFast::eval`] needs: one widened sample.
    pub fn scratch_len(&self) -> usize {
        if let Some(bytes) = &self.bytes {
            return bytes.scratch_bytes().div_ceil(2);
        }
        let [_, in_height, in_width, _] = self.params.input_shape;
        in_height * in_width * self.padded
    }

    /// The output of `input` (any number of samples of the prepared shape, back to back).
    ///
    /// # Panics
    /// If `input` is not whole samples, `output` does not match, or `scratch` is short.
    pub fn eval(&self, input: &[i8], scratch: &mut [i16], output: &mut [i8]) {
        let p = &self.params;
        let [_, in_height, in_width, in_depth] = p.input_shape;
        let [_, out_height, out_width, out_depth] = p.output_shape;
        let sample = in_height * in_width * in_depth;
        assert!(sample > 0 && input.len().is_multiple_of(sample));
        let batches = input.len() / sample;
        let out_sample = out_height * out_width * out_depth;
        assert_eq!(output.len(), batches * out_sample);
        if let Some(bytes) = &self.bytes {
            let scratch = &mut super::vnni::as_bytes(scratch)[..bytes.scratch_bytes()];
            for (x, out) in input.chunks_exact(sample).zip(output.chunks_exact_mut(out_sample)) {
                // SAFETY: `bytes` is only built on `Isa::Avx512Vnni`, after detection; the sizes
                // were checked above.
                unsafe { bytes.sample(x, scratch, out) };
            }
            return;
        }
        let wide = &mut scratch[..self.scratch_len()];
        for (x, out) in input.chunks_exact(sample).zip(output.chunks_exact_mut(out_sample)) {
            for (pixel, dst) in x.chunks_exact(in_depth).zip(wide.chunks_exact_mut(self.padded)) {
                if p.depth_multiplier == 1 {
                    for (d, &x) in dst.iter_mut().zip(pixel) {
                        *d = (x as i32 + p.input_offset) as i16;
                    }
                } else {
                    for (d, &x) in dst.chunks_exact_mut(p.depth_multiplier).zip(pixel) {
                        d.fill((x as i32 + p.input_offset) as i16);
                    }
                }
            }
            match self.isa {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: `Isa::Avx512Vnni` only exists after run-time detection; sizes checked above.
                Isa::Avx512Vnni => unsafe { avx512::sample(self, wide, out) },
                #[cfg(target_arch = "x86_64")]
                // SAFETY: `Isa::Avx2` only exists after run-time detection; sizes checked above.
                Isa::Avx2 => unsafe { avx2::sample(self, wide, out) },
                _ => self.sample_portable(wide, out),
            }
        }
    }

    /// The in-image taps of output pixel `(out_y, out_x)`: the filter rows and columns whose
    /// input falls in the image, and the input position of tap `(0, 0)`.
    #[inline(always)]
    fn taps(&self, out_y: usize, out_x: usize) -> Taps {
        let p = &self.params;
        let [_, in_height, in_width, _] = p.input_shape;
        let [_, filter_height, filter_width, _] = p.filter_shape;
        let in_y0 = (out_y * p.stride_height) as isize - p.padding_values.height as isize;
        let in_x0 = (out_x * p.stride_width) as isize - p.padding_values.width as isize;
        Taps {
            ys: in_image(in_y0, p.dilation_height, filter_height, in_height),
            xs: in_image(in_x0, p.dilation_width, filter_width, in_width),
            in_y0,
            in_x0,
        }
    }

    /// Calls `f(tap index, input pixel index)` for each in-image tap of `taps`.
    #[inline(always)]
    fn for_each_tap(&self, taps: &Taps, mut f: impl FnMut(usize, usize)) {
        let p = &self.params;
        let (in_width, filter_width) = (p.input_shape[2], p.filter_shape[2]);
        for filter_y in taps.ys.clone() {
            let in_y = (taps.in_y0 + (filter_y * p.dilation_height) as isize) as usize;
            for filter_x in taps.xs.clone() {
                let in_x = (taps.in_x0 + (filter_x * p.dilation_width) as isize) as usize;
                f(filter_y * filter_width + filter_x, in_y * in_width + in_x);
            }
        }
    }

    fn sample_portable(&self, wide: &[i16], out: &mut [i8]) {
        let [_, out_height, out_width, out_depth] = self.params.output_shape;
        for out_y in 0..out_height {
            for out_x in 0..out_width {
                let dst = &mut out[(out_y * out_width + out_x) * out_depth..][..out_depth];
                for c0 in (0..out_depth).step_by(LANES) {
                    let mut acc = [0i32; LANES];
                    self.for_each_tap(&self.taps(out_y, out_x), |tap, pixel| {
                        let x = &wide[pixel * self.padded + c0..][..LANES];
                        let w = &self.filter[tap * self.padded + c0..][..LANES];
                        for ((a, &x), &w) in acc.iter_mut().zip(x).zip(w) {
                            *a = a.wrapping_add(x as i32 * w as i32);
                        }
                    });
                    for (lane, d) in dst[c0..].iter_mut().take(LANES).enumerate() {
                        *d = self.stage.apply(c0 + lane, acc[lane]);
                    }
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::super::stage::avx2 as vstage;
    use super::{DepthwiseConvFast, LANES};

    /// # Safety
    /// AVX2 available; `wide` holds one widened sample, `out` one output sample.
    #[target_feature(enable = "avx2")]
    pub unsafe fn sample(k: &DepthwiseConvFast, wide: &[i16], out: &mut [i8]) {
        let [_, out_height, out_width, out_depth] = k.params.output_shape;
        let (in_width, filter_width) = (k.params.input_shape[2], k.params.filter_shape[2]);
        let (dilation_height, dilation_width) = (k.params.dilation_height, k.params.dilation_width);
        let (x_ptr, w_ptr) = (wide.as_ptr(), k.filter.as_ptr());
        for out_y in 0..out_height {
            for out_x in 0..out_width {
                let dst = out.as_mut_ptr().wrapping_add((out_y * out_width + out_x) * out_depth);
                let taps = k.taps(out_y, out_x);
                for c0 in (0..out_depth).step_by(LANES) {
                    let (mut lo, mut hi) = (_mm256_setzero_si256(), _mm256_setzero_si256());
                    for filter_y in taps.ys.clone() {
                        let in_y = (taps.in_y0 + (filter_y * dilation_height) as isize) as usize;
                        for filter_x in taps.xs.clone() {
                            let in_x = (taps.in_x0 + (filter_x * dilation_width) as isize) as usize;
                            let (tap, pixel) = (filter_y * filter_width + filter_x, in_y * in_width + in_x);
                            // SAFETY: `pixel` is in the image and `c0 + 16 ≤ padded`; `tap` is a
                            // filter tap; both arrays are `[·][padded]`.
                            unsafe {
                                let x = _mm256_loadu_si256(x_ptr.add(pixel * k.padded + c0) as *const __m256i);
                                let w = _mm256_loadu_si256(w_ptr.add(tap * k.padded + c0) as *const __m256i);
                                let prod = _mm256_mullo_epi16(x, w);
                                lo = _mm256_add_epi32(lo, _mm256_cvtepi16_epi32(_mm256_castsi256_si128(prod)));
                                hi = _mm256_add_epi32(hi, _mm256_cvtepi16_epi32(_mm256_extracti128_si256(prod, 1)));
                            }
                        }
                    }
                    // SAFETY: the stage is padded to whole blocks; the pixel has `out_depth` bytes.
                    unsafe {
                        let v = vstage::pack16(vstage::apply8(&k.stage, c0, lo), vstage::apply8(&k.stage, c0 + 8, hi));
                        vstage::store_partial(v, dst.add(c0), LANES.min(out_depth - c0));
                    }
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::super::stage::avx512 as vstage;
    use super::{DepthwiseConvFast, WIDE_LANES};

    /// # Safety
    /// AVX-512F and BW available; `wide` holds one widened sample, `out` one output sample.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub unsafe fn sample(k: &DepthwiseConvFast, wide: &[i16], out: &mut [i8]) {
        let [_, out_height, out_width, out_depth] = k.params.output_shape;
        let (in_width, filter_width) = (k.params.input_shape[2], k.params.filter_shape[2]);
        let (dilation_height, dilation_width) = (k.params.dilation_height, k.params.dilation_width);
        let (x_ptr, w_ptr) = (wide.as_ptr(), k.filter.as_ptr());
        for out_y in 0..out_height {
            for out_x in 0..out_width {
                let dst = out.as_mut_ptr().wrapping_add((out_y * out_width + out_x) * out_depth);
                let taps = k.taps(out_y, out_x);
                for c0 in (0..out_depth).step_by(WIDE_LANES) {
                    let (mut lo, mut hi) = (_mm512_setzero_si512(), _mm512_setzero_si512());
                    for filter_y in taps.ys.clone() {
                        let in_y = (taps.in_y0 + (filter_y * dilation_height) as isize) as usize;
                        for filter_x in taps.xs.clone() {
                            let in_x = (taps.in_x0 + (filter_x * dilation_width) as isize) as usize;
                            let (tap, pixel) = (filter_y * filter_width + filter_x, in_y * in_width + in_x);
                            // SAFETY: `pixel` is in the image and `c0 + 32 ≤ padded`; `tap` is a
                            // filter tap; both arrays are `[·][padded]`.
                            unsafe {
                                let x = _mm512_loadu_si512(x_ptr.add(pixel * k.padded + c0) as *const __m512i);
                                let w = _mm512_loadu_si512(w_ptr.add(tap * k.padded + c0) as *const __m512i);
                                let prod = _mm512_mullo_epi16(x, w);
                                lo = _mm512_add_epi32(lo, _mm512_cvtepi16_epi32(_mm512_castsi512_si256(prod)));
                                hi = _mm512_add_epi32(hi, _mm512_cvtepi16_epi32(_mm512_extracti64x4_epi64::<1>(prod)));
                            }
                        }
                    }
                    let n = out_depth - c0;
                    // SAFETY: the stage is padded to whole 32-channel blocks; the pixel has
                    // `out_depth` bytes.
                    unsafe {
                        vstage::store16(vstage::apply16(&k.stage, c0, lo), dst.add(c0), n.min(16));
                        if n > 16 {
                            vstage::store16(vstage::apply16(&k.stage, c0 + 16, hi), dst.add(c0 + 16), n - 16);
                        }
                    }
                }
            }
        }
    }
}

/// What [`DepthwiseConvFast::taps`] returns.
struct Taps {
    ys: std::ops::Range<usize>,
    xs: std::ops::Range<usize>,
    in_y0: isize,
    in_x0: isize,
}

/// The taps `k` of a filter of `taps` taps whose position `origin + k · dilation` falls in
/// `0..size`.
#[inline(always)]
pub(super) fn in_image(origin: isize, dilation: usize, taps: usize, size: usize) -> std::ops::Range<usize> {
    let d = dilation as isize;
    // Dilation 1 (nearly every model) needs no division.
    let first = if origin >= 0 {
        0
    } else if d == 1 {
        -origin
    } else {
        (-origin + d - 1) / d
    };
    let end = if d == 1 { size as isize - origin } else { (size as isize - origin + d - 1) / d };
    let end = end.clamp(0, taps as isize);
    first.min(end) as usize..end as usize
}
