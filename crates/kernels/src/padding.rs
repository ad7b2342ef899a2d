//! Output sizes and padding amounts for windowed ops, mirroring TFLM `kernels/padding.h`
//! (`ComputeOutSize`, `ComputePaddingWithOffset`, `ComputePaddingHeightWidth`).
//!
//! Only the top/left amounts are kept: the kernels skip out-of-image taps, so the extra odd pixel
//! of SAME padding goes to the bottom/right implicitly.

/// TFLite padding scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Padding {
    Same,
    Valid,
}

/// Padding before the first row/column (TFLM `PaddingValues::height/width`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PaddingValues {
    pub height: usize,
    pub width: usize,
}

/// TFLM `ComputeOutSize`: SAME gives `ceil(in / stride)`, VALID gives
/// `(in + stride − effective_filter) / stride`, and 0 when the window does not fit.
/// `stride` and `dilation` must be ≥ 1.
pub fn compute_out_size(
    padding: Padding,
    image_size: usize,
    filter_size: usize,
    stride: usize,
    dilation: usize,
) -> usize {
    let effective_filter_size = (filter_size.max(1) - 1) * dilation + 1;
    match padding {
        Padding::Same => image_size.div_ceil(stride),
        Padding::Valid => (image_size + stride).saturating_sub(effective_filter_size) / stride,
    }
}

/// TFLM `ComputePaddingWithOffset`: returns `(pad_before, odd_offset)` where the total padding is
/// `max((out − 1)·stride + effective_filter − in, 0)`.
pub fn compute_padding_with_offset(
    stride: usize,
    dilation: usize,
    in_size: usize,
    filter_size: usize,
    out_size: usize,
) -> (usize, usize) {
    let effective_filter_size = (filter_size.max(1) - 1) * dilation + 1;
    let total = (out_size.saturating_sub(1) * stride + effective_filter_size).saturating_sub(in_size);
    (total / 2, total % 2)
}

/// TFLM `ComputePaddingHeightWidth`: `(padding, out_height, out_width)` for an NHWC window op.
#[allow(clippy::too_many_arguments)]
pub fn compute_padding_height_width(
    stride_height: usize,
    stride_width: usize,
    dilation_height: usize,
    dilation_width: usize,
    in_height: usize,
    in_width: usize,
    filter_height: usize,
    filter_width: usize,
    padding: Padding,
) -> (PaddingValues, usize, usize) {
    let out_height = compute_out_size(padding, in_height, filter_height, stride_height, dilation_height);
    let out_width = compute_out_size(padding, in_width, filter_width, stride_width, dilation_width);
    let (height, _) = compute_padding_with_offset(stride_height, dilation_height, in_height, filter_height, out_height);
    let (width, _) = compute_padding_with_offset(stride_width, dilation_width, in_width, filter_width, out_width);
    (PaddingValues { height, width }, out_height, out_width)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_and_valid_sizes() {
        assert_eq!(compute_out_size(Padding::Same, 5, 3, 2, 1), 3);
        assert_eq!(compute_out_size(Padding::Valid, 5, 3, 2, 1), 2);
        assert_eq!(compute_out_size(Padding::Valid, 5, 3, 1, 2), 1);
        assert_eq!(compute_out_size(Padding::Valid, 2, 3, 1, 1), 0);
        // SAME 5→3 with k=3, s=2: total = 2·2 + 3 − 5 = 2 → 1 before, 1 after.
        assert_eq!(compute_padding_with_offset(2, 1, 5, 3, 3), (1, 0));
        // SAME 4→2 with k=3, s=2: total 1 → 0 before, the odd pixel after.
        assert_eq!(compute_padding_with_offset(2, 1, 4, 3, 2), (0, 1));
        // VALID never pads.
        assert_eq!(compute_padding_with_offset(2, 1, 5, 2, 2), (0, 0));
        let (pad, h, w) = compute_padding_height_width(1, 1, 2, 2, 7, 6, 3, 3, Padding::Same);
        assert_eq!((pad, h, w), (PaddingValues { height: 2, width: 2 }, 7, 6));
    }
}
