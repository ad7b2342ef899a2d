//! RESIZE_NEAREST_NEIGHBOR: copies the nearest input pixel; values and quantization unchanged.
//!
//! Mirrors `reference/resize_nearest_neighbor.h` (`GetNearestNeighbor` and
//! `ResizeNearestNeighbor<T>`, which TFLM instantiates for float, int8 and int16): the source
//! index is computed in `float` exactly as there.

use crate::KernelError;

/// The prepared geometry: NHWC input `[n, h, w, c]`, output `[n, out_h, out_w, c]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ResizeNearestParams {
    pub batches: usize,
    pub input_height: usize,
    pub input_width: usize,
    pub depth: usize,
    pub output_height: usize,
    pub output_width: usize,
    pub align_corners: bool,
    pub half_pixel_centers: bool,
}

/// Checks the shapes (TFLM: 4-D input, two output sizes).
pub fn prepare_resize_nearest_neighbor(
    input: &[usize],
    size: [usize; 2],
    align_corners: bool,
    half_pixel_centers: bool,
) -> Result<ResizeNearestParams, KernelError> {
    let &[batches, input_height, input_width, depth] = input else {
        return Err(KernelError::Unsupported { what: "RESIZE_NEAREST_NEIGHBOR needs a 4-D input" });
    };
    if size.contains(&0)
        || input.contains(&0)
        || i32::try_from(size[0].max(size[1]).max(input_height).max(input_width)).is_err()
    {
        return Err(KernelError::Unsupported { what: "RESIZE_NEAREST_NEIGHBOR sizes must be positive int32" });
    }
    Ok(ResizeNearestParams {
        batches,
        input_height,
        input_width,
        depth,
        output_height: size[0],
        output_width: size[1],
        align_corners,
        half_pixel_centers,
    })
}

/// TFLM `GetNearestNeighbor`.
pub fn nearest_neighbor(
    output_value: usize,
    input_size: usize,
    output_size: usize,
    align_corners: bool,
    half_pixel_centers: bool,
) -> usize {
    let scale = if align_corners && output_size > 1 {
        (input_size as i32 - 1) as f32 / (output_size as i32 - 1) as f32
    } else {
        input_size as i32 as f32 / output_size as i32 as f32
    };
    let offset = if half_pixel_centers { 0.5f32 } else { 0.0 };
    let v = (output_value as i32 as f32 + offset) * scale;
    // TfLiteRound is std::round: half away from zero
    let mut index = (if align_corners { v.round() } else { v.floor() } as i32).min(input_size as i32 - 1);
    if half_pixel_centers {
        index = index.max(0);
    }
    index as usize
}

/// TFLM `reference_ops::ResizeNearestNeighbor<T>`.
///
/// # Panics
/// If the slices disagree with `p`.
pub fn resize_nearest_neighbor<T: Copy>(p: &ResizeNearestParams, input: &[T], output: &mut [T]) {
    let (h, w, c) = (p.input_height, p.input_width, p.depth);
    assert_eq!(input.len(), p.batches * h * w * c);
    assert_eq!(output.len(), p.batches * p.output_height * p.output_width * c);
    let mut o = 0;
    for b in 0..p.batches {
        for y in 0..p.output_height {
            let iy = nearest_neighbor(y, h, p.output_height, p.align_corners, p.half_pixel_centers);
            for x in 0..p.output_width {
                let ix = nearest_neighbor(x, w, p.output_width, p.align_corners, p.half_pixel_centers);
                let src = ((b * h + iy) * w + ix) * c;
                output[o..o + c].copy_from_slice(&input[src..src + c]);
                o += c;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_of_the_three_modes() {
        // 2x upsampling: each source pixel twice
        let idx = |n, align, half| (0..n).map(|o| nearest_neighbor(o, 3, n, align, half)).collect::<Vec<_>>();
        assert_eq!(idx(6, false, false), [0, 0, 1, 1, 2, 2]);
        assert_eq!(idx(6, false, true), [0, 0, 1, 1, 2, 2]);
        // align_corners: scale (3 − 1) / (6 − 1) = 0.4, rounded: 0, 0.4, 0.8, 1.2, 1.6, 2.0
        assert_eq!(idx(6, true, false), [0, 0, 1, 1, 2, 2]);
        // downsampling 5 → 2: scale 2.5, floor 0, 2.5 → [0, 2]; half pixel 1.25, 3.75 → [1, 3]
        let down = |align, half| (0..2).map(|o| nearest_neighbor(o, 5, 2, align, half)).collect::<Vec<_>>();
        assert_eq!(down(false, false), [0, 2]);
        assert_eq!(down(false, true), [1, 3]);
        assert_eq!(down(true, false), [0, 4]);
    }

    #[test]
    fn copies_whole_pixels() {
        let p = prepare_resize_nearest_neighbor(&[1, 1, 2, 2], [2, 4], false, false).unwrap();
        let mut out = [0i8; 16];
        resize_nearest_neighbor(&p, &[1, 2, 3, 4], &mut out);
        assert_eq!(out, [1, 2, 1, 2, 3, 4, 3, 4, 1, 2, 1, 2, 3, 4, 3, 4]);
        assert!(prepare_resize_nearest_neighbor(&[1, 2, 2], [2, 2], false, false).is_err());
    }
}
