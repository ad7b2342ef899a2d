//! RESIZE_BILINEAR on int8: each output pixel the weighted sum of its four nearest input pixels,
//! in fixed point with 10 fractional bits per axis, on stored values (the output keeps the
//! input's scale and zero point, the weights summing to one).
//!
//! Mirrors `micro/kernels/resize_bilinear.cc` (Prepare: 4-D input, not both `align_corners` and
//! `half_pixel_centers`) and `reference_ops::ResizeBilinearInteger` with
//! `ComputeInterpolationValuesInteger` (`reference/resize_bilinear.h`), default build rounding
//! (half away from zero).

use crate::KernelError;

/// The scales and shapes of one int8 RESIZE_BILINEAR.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ResizeBilinearParams {
    /// `[N, H, W, C]` of the input.
    pub input_shape: [usize; 4],
    pub output_height: usize,
    pub output_width: usize,
    pub height_scale_10: i32,
    pub width_scale_10: i32,
    pub half_pixel_centers: bool,
}

/// `ResizeBilinearPrepare` and the fixed-point scales of `ResizeBilinearInteger`.
pub fn prepare_resize_bilinear(
    input_shape: &[usize],
    size: [usize; 2],
    align_corners: bool,
    half_pixel_centers: bool,
) -> Result<ResizeBilinearParams, KernelError> {
    let &[n, h, w, c] = input_shape else {
        return Err(KernelError::InvalidShape { what: "RESIZE_BILINEAR input must be 4-D NHWC" });
    };
    if align_corners && half_pixel_centers {
        return Err(KernelError::Unsupported { what: "half_pixel_centers with align_corners" });
    }
    let [oh, ow] = size;
    if oh == 0 || ow == 0 || h == 0 || w == 0 || h.max(w).max(oh).max(ow) >= 1 << 20 {
        return Err(KernelError::InvalidShape { what: "RESIZE_BILINEAR sizes must be positive and below 2^20" });
    }
    let scale = |input: usize, output: usize| -> i32 {
        let (i, o) = (input as i32, output as i32);
        if align_corners && o > 1 {
            ((1 << 10) * (i - 1) + (o - 1) / 2) / (o - 1)
        } else {
            ((1 << 10) * i + o / 2) / o
        }
    };
    Ok(ResizeBilinearParams {
        input_shape: [n, h, w, c],
        output_height: oh,
        output_width: ow,
        height_scale_10: scale(h, oh),
        width_scale_10: scale(w, ow),
        half_pixel_centers,
    })
}

/// `ComputeInterpolationValuesInteger`: `(scaled value, lower, upper)`.
fn interpolation_values(value: i32, scale_10: i32, half_pixel_centers: bool, input_size: i32) -> (i32, i32, i32) {
    let scaled = if half_pixel_centers { value * scale_10 + scale_10 / 2 - (1 << 9) } else { value * scale_10 };
    let lower = (scaled / (1 << 10)).max(0);
    let upper = ((scaled + (1 << 10) - 1) / (1 << 10)).min(input_size - 1);
    (scaled, lower, upper)
}

/// `ResizeBilinearInteger<int8_t>`.
///
/// # Panics
/// If the slices disagree with the shapes in `p`.
pub fn resize_bilinear_s8(p: &ResizeBilinearParams, input: &[i8], output: &mut [i8]) {
    let [n, h, w, c] = p.input_shape;
    let (oh, ow) = (p.output_height, p.output_width);
    assert_eq!(input.len(), n * h * w * c);
    assert_eq!(output.len(), n * oh * ow * c);
    let at = |b: usize, y: i32, x: i32, k: usize| input[((b * h + y as usize) * w + x as usize) * c + k] as i64;
    let one = 1i64 << 10;
    let mut o = 0;
    for b in 0..n {
        for y in 0..oh as i32 {
            let (input_y, y0, y1) = interpolation_values(y, p.height_scale_10, p.half_pixel_centers, h as i32);
            let dy = input_y as i64 - one * y0 as i64;
            for x in 0..ow as i32 {
                let (input_x, x0, x1) = interpolation_values(x, p.width_scale_10, p.half_pixel_centers, w as i32);
                let dx = input_x as i64 - one * x0 as i64;
                for k in 0..c {
                    let output_20 = at(b, y0, x0, k) * (one - dy) * (one - dx)
                        + at(b, y1, x0, k) * dy * (one - dx)
                        + at(b, y0, x1, k) * (one - dy) * dx
                        + at(b, y1, x1, k) * dy * dx;
                    let round = if output_20 > 0 { 1i64 << 19 } else { -(1i64 << 19) };
                    output[o] = ((output_20 + round) / (1 << 20)) as i8;
                    o += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubling_a_row() {
        // [1, 1, 2, 1] → width 4, asymmetric: x = 0, 0.5, 1, 1.5 → 10, 15, 20, 20.
        let p = prepare_resize_bilinear(&[1, 1, 2, 1], [1, 4], false, false).unwrap();
        let mut out = [0i8; 4];
        resize_bilinear_s8(&p, &[10, 20], &mut out);
        assert_eq!(out, [10, 15, 20, 20]);
        // Half-pixel centers: x = −0.25, 0.25, 0.75, 1.25 → 10, 12.5→13, 17.5→18, 20.
        let p = prepare_resize_bilinear(&[1, 1, 2, 1], [1, 4], false, true).unwrap();
        resize_bilinear_s8(&p, &[10, 20], &mut out);
        assert_eq!(out, [10, 13, 18, 20]);
        // Negative values round half away from zero.
        resize_bilinear_s8(&p, &[-10, -20], &mut out);
        assert_eq!(out, [-10, -13, -18, -20]);
        assert!(prepare_resize_bilinear(&[1, 2, 2, 1], [4, 4], true, true).is_err());
    }
}
