//! The patches of a CONV_2D, copied from a padded image.
//!
//! Each sample is first written once, converted for the GEMM (int16 `x + input_offset`, or the
//! byte `x ^ 0x80`), into an image with a border of pad values (those that add 0: int16 0, or the
//! byte whose `x + input_offset` is 0) wide enough that every tap of every output pixel falls
//! inside it. A patch is then plain copies, without bounds tests: with dilation 1 along the width
//! and no groups, one run of `filter_width · depth` values per filter row.

use crate::conv::ConvPerChannelParams;

/// Where a sample's input lies in its padded image.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PaddedImage {
    p: ConvPerChannelParams,
    /// The image's height and width (input plus border).
    height: usize,
    width: usize,
}

impl PaddedImage {
    pub fn new(p: &ConvPerChannelParams) -> PaddedImage {
        let [_, in_height, in_width, _] = p.input_shape;
        let [_, filter_height, filter_width, _] = p.filter_shape;
        let [_, out_height, out_width, _] = p.output_shape;
        // The last tap of the last output pixel, from the image's origin.
        let extent = |out: usize, stride: usize, taps: usize, dilation: usize| {
            (out.max(1) - 1) * stride + (taps.max(1) - 1) * dilation + 1
        };
        let height = (p.padding_values.height + in_height).max(extent(
            out_height,
            p.stride_height,
            filter_height,
            p.dilation_height,
        ));
        let width =
            (p.padding_values.width + in_width).max(extent(out_width, p.stride_width, filter_width, p.dilation_width));
        PaddedImage { p: *p, height, width }
    }

    /// Values in one image.
    pub fn len(&self) -> usize {
        self.height * self.width * self.p.input_shape[3]
    }

    /// Writes `sample` (one input sample), each value converted, into `image`
    /// ([`PaddedImage::len`] values).
    #[inline]
    pub fn fill<T: Copy>(&self, sample: &[i8], convert: impl Fn(i8) -> T, pad: T, image: &mut [T]) {
        let [_, in_height, in_width, depth] = self.p.input_shape;
        let (top, left) = (self.p.padding_values.height, self.p.padding_values.width);
        let line = self.width * depth;
        image[..top * line].fill(pad);
        image[(top + in_height) * line..].fill(pad);
        let rows = image[top * line..(top + in_height) * line].chunks_exact_mut(line);
        for (dst, src) in rows.zip(sample.chunks_exact(in_width * depth)) {
            let (border, rest) = dst.split_at_mut(left * depth);
            border.fill(pad);
            let (inside, border) = rest.split_at_mut(in_width * depth);
            border.fill(pad);
            for (d, &x) in inside.iter_mut().zip(src) {
                *d = convert(x);
            }
        }
    }

    /// Values in one image row.
    pub fn line(&self) -> usize {
        self.width * self.p.input_shape[3]
    }

    /// Where the first tap of output pixel `(out_y, out_x)` lies in the image (its channel 0).
    #[inline]
    pub fn origin(&self, out_y: usize, out_x: usize) -> usize {
        let p = &self.p;
        out_y * p.stride_height * self.line() + out_x * p.stride_width * p.input_shape[3]
    }

    /// The patch of output pixel `(out_y, out_x)`, channels `channel0..` of each tap, into `row`
    /// (`filter_height · filter_width · filter_in_depth` values).
    #[inline]
    pub fn patch<T: Copy>(&self, image: &[T], out_y: usize, out_x: usize, channel0: usize, row: &mut [T]) {
        let p = &self.p;
        let depth = p.input_shape[3];
        let [_, _, filter_width, filter_in_depth] = p.filter_shape;
        let line = self.line();
        let origin = self.origin(out_y, out_x) + channel0;
        let tap_row = filter_width * filter_in_depth;
        for (filter_y, taps) in row.chunks_exact_mut(tap_row).enumerate() {
            let start = origin + filter_y * p.dilation_height * line;
            if p.dilation_width == 1 && filter_in_depth == depth {
                taps.copy_from_slice(&image[start..start + tap_row]);
                continue;
            }
            for (filter_x, tap) in taps.chunks_exact_mut(filter_in_depth).enumerate() {
                let at = start + filter_x * p.dilation_width * depth;
                tap.copy_from_slice(&image[at..at + filter_in_depth]);
            }
        }
    }
}
