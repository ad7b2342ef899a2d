//! DEPTHWISE_CONV_2D on AVX-512 VNNI: four horizontal taps of a channel per `vpdpbusd` lane.
//!
//! Each sample is written once into a padded byte image `P[y][x][c]` (`x ^ 0x80`, the input
//! channel `c / depth_multiplier`; the border and the padding channels the byte whose
//! `x + input_offset` is 0, as in [`super::vnni`]), then into a quad image
//! `Q[y][x][c] = (P[y][x][c], P[y][x + d][c], P[y][x + 2d][c], P[y][x + 3d][c])` (`d` the
//! dilation along the width): the four bytes one int32 lane of `vpdpbusd` multiplies with four
//! filter taps of the same row and channel. Output pixel `(oy, ox)` then sums, for 16 channels at
//! a time, `filter_height · ⌈filter_width / 4⌉` products of a quad vector and a packed filter
//! vector (taps beyond the filter width have weight 0). Every tap the reference skips reads a
//! border byte, which adds 0 once the offset's share, `(128 - input_offset) · Σ w`, is taken out
//! of the bias at prepare; sums wrap modulo 2^32 like the reference's, and the output stage is
//! [`super::stage`]'s. When the stride along the width divides `4d`, `Q` holds only the columns
//! a quad starts at (every `stride`-th one).

use super::stage::OutputStage;
use super::vnni;
use crate::depthwise_conv::DepthwiseConvPerChannelParams;

/// Channels per vector.
const LANES: usize = 16;

/// The byte form of a DEPTHWISE_CONV_2D, prepared by [`DepthwiseBytes::new`].
#[derive(Clone, Debug)]
pub(crate) struct DepthwiseBytes {
    p: DepthwiseConvPerChannelParams,
    pad: u8,
    /// Output channels padded to a multiple of [`LANES`].
    channels: usize,
    /// Quads per filter row.
    quads: usize,
    /// `[filter_height][quads][channels][4]`.
    filter: Vec<i8>,
    stage: OutputStage,
    /// The padded image's and the quad image's sizes: `(height, width of P, width of Q)`, and
    /// the columns of `P` between two of `Q`.
    height: usize,
    width: usize,
    quad_width: usize,
    column_step: usize,
}

impl DepthwiseBytes {
    /// `None` unless the input zero point is int8's (see [`vnni::pad_byte`]) and the output
    /// stage covers the multipliers.
    pub fn new(
        p: &DepthwiseConvPerChannelParams,
        multiplier: &[i32],
        shift: &[i32],
        filter: &[i8],
        bias: Option<&[i32]>,
    ) -> Option<DepthwiseBytes> {
        let pad = vnni::pad_byte(p.input_offset)?;
        let [_, filter_height, filter_width, out_depth] = p.filter_shape;
        let [_, in_height, in_width, _] = p.input_shape;
        let [_, out_height, out_width, _] = p.output_shape;
        let channels = out_depth.next_multiple_of(LANES);
        let quads = filter_width.div_ceil(4);
        let mut packed = vec![0i8; filter_height * quads * channels * 4];
        let mut sums = vec![0i32; out_depth];
        for fy in 0..filter_height {
            for fx in 0..filter_width {
                for (c, sum) in sums.iter_mut().enumerate() {
                    let w = filter[(fy * filter_width + fx) * out_depth + c];
                    packed[((fy * quads + fx / 4) * channels + c) * 4 + fx % 4] = w;
                    *sum += w as i32;
                }
            }
        }
        let correction = 128 - p.input_offset;
        let folded: Vec<i32> =
            (0..out_depth).map(|c| bias.map_or(0, |b| b[c]).wrapping_sub(correction.wrapping_mul(sums[c]))).collect();
        let stage = OutputStage::new(
            channels,
            Some(&folded),
            multiplier,
            shift,
            p.output_offset,
            p.quantized_activation_min,
            p.quantized_activation_max,
        )?;
        let extent = |out: usize, stride: usize, reach: usize| (out.max(1) - 1) * stride + reach + 1;
        let height = (p.padding_values.height + in_height).max(extent(
            out_height,
            p.stride_height,
            (filter_height - 1) * p.dilation_height,
        ));
        let (d, stride) = (p.dilation_width, p.stride_width);
        let column_step = if (4 * d).is_multiple_of(stride) { stride } else { 1 };
        let quad_width = extent(out_width, stride / column_step, 4 * (quads - 1) * d / column_step);
        let width = (p.padding_values.width + in_width).max((quad_width - 1) * column_step + 3 * d + 1);
        Some(DepthwiseBytes {
            p: *p,
            pad,
            channels,
            quads,
            filter: packed,
            stage,
            height,
            width,
            quad_width,
            column_step,
        })
    }

    /// Bytes of scratch: the padded image, then the quad image.
    pub fn scratch_bytes(&self) -> usize {
        self.height * (self.width + 4 * self.quad_width) * self.channels
    }

    /// One sample.
    ///
    /// # Safety
    /// The CPU has AVX-512 VNNI; `x` is one input sample, `out` one output sample, `scratch`
    /// holds [`DepthwiseBytes::scratch_bytes`].
    pub unsafe fn sample(&self, x: &[i8], scratch: &mut [u8], out: &mut [i8]) {
        let (image, quads) = scratch.split_at_mut(self.height * self.width * self.channels);
        self.fill(x, image);
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the caller's contract; the images have the sizes `new` computed.
        unsafe {
            avx512::interleave(self, image, quads);
            avx512::sample(self, quads, out);
        }
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("the VNNI depthwise conv exists on x86-64 only");
    }

    /// Writes the padded byte image `P` of sample `x`.
    fn fill(&self, x: &[i8], image: &mut [u8]) {
        let p = &self.p;
        let [_, in_height, in_width, in_depth] = p.input_shape;
        let (top, left, line) = (p.padding_values.height, p.padding_values.width, self.width * self.channels);
        image.fill(self.pad);
        for (y, src) in x.chunks_exact(in_width * in_depth).enumerate().take(in_height) {
            let row = &mut image[(top + y) * line + left * self.channels..][..in_width * self.channels];
            for (dst, pixel) in row.chunks_exact_mut(self.channels).zip(src.chunks_exact(in_depth)) {
                if p.depth_multiplier == 1 {
                    for (d, &v) in dst.iter_mut().zip(pixel) {
                        *d = vnni::to_byte(v);
                    }
                } else {
                    for (d, &v) in dst.chunks_exact_mut(p.depth_multiplier).zip(pixel) {
                        d.fill(vnni::to_byte(v));
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
    use super::{DepthwiseBytes, LANES};

    /// `Q[y][x][c] = (P[y][x'][c], P[y][x' + d][c], P[y][x' + 2d][c], P[y][x' + 3d][c])` with
    /// `x' = x · column_step`.
    ///
    /// # Safety
    /// AVX2 available; `image` is `P`, `quads` has room for `Q`.
    #[target_feature(enable = "avx2")]
    pub unsafe fn interleave(k: &DepthwiseBytes, image: &[u8], quads: &mut [u8]) {
        let (c, d) = (k.channels, k.p.dilation_width);
        assert!(image.len() >= k.height * k.width * c && quads.len() >= k.height * k.quad_width * c * 4);
        for y in 0..k.height {
            for x in 0..k.quad_width {
                let src = image[(y * k.width + x * k.column_step) * c..].as_ptr();
                let dst = quads[(y * k.quad_width + x) * c * 4..].as_mut_ptr();
                for c0 in (0..c).step_by(LANES) {
                    // SAFETY: `x · column_step + 3d < width` (see `new`), `c0 + 16 ≤ c`; the quad row has `4c` bytes.
                    unsafe {
                        let load = |t: usize| _mm_loadu_si128(src.add(t * d * c + c0) as *const __m128i);
                        let (a, b, e, f) = (load(0), load(1), load(2), load(3));
                        let (ab_lo, ab_hi) = (_mm_unpacklo_epi8(a, b), _mm_unpackhi_epi8(a, b));
                        let (ef_lo, ef_hi) = (_mm_unpacklo_epi8(e, f), _mm_unpackhi_epi8(e, f));
                        let out = dst.add(c0 * 4) as *mut __m128i;
                        _mm_storeu_si128(out, _mm_unpacklo_epi16(ab_lo, ef_lo));
                        _mm_storeu_si128(out.add(1), _mm_unpackhi_epi16(ab_lo, ef_lo));
                        _mm_storeu_si128(out.add(2), _mm_unpacklo_epi16(ab_hi, ef_hi));
                        _mm_storeu_si128(out.add(3), _mm_unpackhi_epi16(ab_hi, ef_hi));
                    }
                }
            }
        }
    }

    /// The output sample from the quad image.
    ///
    /// # Safety
    /// AVX-512 VNNI available; `quads` holds `Q`; `out` is one output sample.
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vnni")]
    pub unsafe fn sample(k: &DepthwiseBytes, quads: &[u8], out: &mut [i8]) {
        let p = &k.p;
        let [_, out_height, out_width, out_depth] = p.output_shape;
        let line = k.quad_width * k.channels * 4;
        assert!(quads.len() >= k.height * line && out.len() == out_height * out_width * out_depth);
        for out_y in 0..out_height {
            for out_x in 0..out_width {
                let dst = out.as_mut_ptr().wrapping_add((out_y * out_width + out_x) * out_depth);
                let origin = out_y * p.stride_height * line + out_x * p.stride_width / k.column_step * k.channels * 4;
                let mut c0 = 0;
                while c0 < out_depth {
                    let blocks = (out_depth - c0).div_ceil(LANES).min(4);
                    // SAFETY: forwarded; `c0 + 16 · blocks ≤ channels`.
                    unsafe {
                        match blocks {
                            4 => pixel::<4>(k, quads, origin, c0, dst),
                            3 => pixel::<3>(k, quads, origin, c0, dst),
                            2 => pixel::<2>(k, quads, origin, c0, dst),
                            _ => pixel::<1>(k, quads, origin, c0, dst),
                        }
                    }
                    c0 += blocks * LANES;
                }
            }
        }
    }

    /// Channels `c0 .. c0 + 16 · B` of the output pixel whose first quad is at `quads[origin]`,
    /// written to `dst[c0..]` (at most `out_depth - c0` bytes).
    ///
    /// # Safety
    /// As [`sample`]; `c0 + 16 · B ≤ channels`.
    #[inline]
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vnni")]
    unsafe fn pixel<const B: usize>(k: &DepthwiseBytes, quads: &[u8], origin: usize, c0: usize, dst: *mut i8) {
        let p = &k.p;
        let (filter_height, out_depth) = (p.filter_shape[1], p.output_shape[3]);
        let line = k.quad_width * k.channels * 4;
        let (row_step, quad_step, filter_step) =
            (p.dilation_height * line, 4 * p.dilation_width / k.column_step * k.channels * 4, k.channels * 4);
        let mut acc = [_mm512_setzero_si512(); B];
        // SAFETY: the quad image covers every quad of every output pixel (`new`); the filter is
        // `[fy][j][channels][4]`.
        unsafe {
            let mut x = quads.as_ptr().add(origin + c0 * 4);
            let mut w = k.filter.as_ptr().add(c0 * 4);
            for _ in 0..filter_height {
                for j in 0..k.quads {
                    let (xj, wj) = (x.add(j * quad_step), w.add(j * filter_step));
                    for (b, acc) in acc.iter_mut().enumerate() {
                        let xv = _mm512_loadu_si512(xj.add(b * 64) as *const __m512i);
                        let wv = _mm512_loadu_si512(wj.add(b * 64) as *const __m512i);
                        *acc = _mm512_dpbusd_epi32(*acc, xv, wv);
                    }
                }
                x = x.add(row_step);
                w = w.add(k.quads * filter_step);
            }
            for (b, &acc) in acc.iter().enumerate() {
                let c = c0 + b * LANES;
                if c < out_depth {
                    vstage::store16(vstage::apply16(&k.stage, c, acc), dst.add(c), LANES.min(out_depth - c));
                }
            }
        }
    }
}
