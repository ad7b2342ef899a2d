//! How CMSIS-NN's generic int4 depthwise kernel (`arm_depthwise_conv_s4`) walks packed weights
//! when the channel count is odd, replayed against TFLM's packing to tell whether it reads the
//! right nibble for every output pixel, channel and tap.
//!
//! TFLM packs a `[1, KH, KW, C·M]` int4 filter two values per byte, element `e` of the flat
//! filter in byte `e / 2`, the low nibble for even `e`. For an odd input channel count the
//! kernel does not compute that address: per output channel it starts from a byte offset
//! counted in whole bytes per tap (`(C / 2)·M`), advances it tap by tap with a low/high nibble
//! flag, and carries the flag from one channel to the next assuming every tap of the window was
//! read. Windows cut by padding skip taps, and a depth multiplier above 1 changes the bytes per
//! tap; both can send it to the wrong nibble.

use std::collections::BTreeSet;

use super::Axis;

/// A depthwise layer's spatial geometry (`[height, width]` pairs).
pub(super) struct Geometry {
    pub input: [usize; 2],
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub dilation: [usize; 2],
}

/// The taps `[start, end)` of the kernel the loop visits along one axis for a window starting at
/// `base` (negative in the padding), as the kernel bounds them.
fn taps(base: i64, dilation: i64, kernel: i64, input: i64) -> (i64, i64) {
    // `(a + d - 1) / d` in C truncates toward zero; Rust's `/` does the same.
    let start = ((-base + dilation - 1) / dilation).max(0);
    let end = ((input - base + dilation - 1) / dilation).min(kernel);
    (start, end)
}

/// Whether the kernel's odd-channel path reads every weight from where TFLM packed it, for `c`
/// (odd) input channels and depth multiplier `m`, on every window `axes` produce.
pub(super) fn odd_channel_reads_right(g: &Geometry, axes: [Axis; 2], c: usize, m: usize) -> bool {
    let range = |d: usize, o: usize| {
        let base = (o * g.stride[d]) as i64 - axes[d].pad_before as i64;
        taps(base, g.dilation[d] as i64, g.kernel[d] as i64, g.input[d] as i64)
    };
    // Windows with the same visited taps read the same nibbles: check each kind once.
    let windows: BTreeSet<((i64, i64), (i64, i64))> = (0..axes[0].out)
        .flat_map(|y| (0..axes[1].out).map(move |x| (y, x)))
        .map(|(y, x)| (range(0, y), range(1, x)))
        .collect();
    windows.into_iter().all(|(ty, tx)| window_reads_right(g.kernel, ty, tx, c as i64, m as i64))
}

/// One output pixel of the odd-channel path: every channel's nibbles for taps `ty × tx` of a
/// `kernel` window.
fn window_reads_right(kernel: [usize; 2], ty: (i64, i64), tx: (i64, i64), c: i64, m: i64) -> bool {
    let (kh, kw) = (kernel[0] as i64, kernel[1] as i64);
    let (out_ch, per_tap) = (c * m, (c / 2) * m);
    let (mut packed_channel, mut low) = (0i64, true);
    for oc in 0..out_ch {
        if oc > 0 && oc % 2 == 0 {
            packed_channel += 1;
        }
        // High nibbles read so far in this channel: the kernel's `kernel_index_offset_uneven`.
        let mut uneven = 0i64;
        for ky in ty.0..ty.1 {
            let mut byte = (ky * kw + tx.0) * per_tap + packed_channel + uneven;
            for kx in tx.0..tx.1 {
                let high = !low;
                uneven += i64::from(high);
                low = high;
                let e = (ky * kw + kx) * out_ch + oc;
                if byte != e / 2 || high != (e % 2 == 1) {
                    return false;
                }
                byte += per_tap + i64::from(low);
            }
        }
        // The flag moves on to the next channel as if all `kh · kw` taps had been read.
        if (kh * kw) % 2 == 1 {
            low = !low;
        }
        low = !low;
    }
    true
}

#[cfg(test)]
mod tests {
    use crate::op::{Conv2D, DepthwiseConv2D, FusedActivation, Padding};

    fn layer(m: usize, dilation: [usize; 2], padding: Padding) -> DepthwiseConv2D {
        let conv = Conv2D { stride: [1, 1], dilation, padding, activation: FusedActivation::None };
        DepthwiseConv2D { conv, depth_multiplier: m }
    }

    #[test]
    fn even_channels_and_the_optimized_path_read_right() {
        for padding in [Padding::Same, Padding::Valid] {
            for (c, m, d) in [(4, 1, [2, 2]), (6, 3, [1, 1]), (8, 2, [2, 1]), (5, 1, [1, 1]), (7, 1, [1, 1])] {
                assert!(layer(m, d, padding).int4_alike_on_cmsis_nn(&[1, 9, 9, c], &[1, 3, 3, c * m]), "{c} {m} {d:?}");
            }
        }
    }

    #[test]
    fn odd_channels_on_the_generic_path() {
        // Whole windows with one multiplier: the running counters stay right.
        assert!(layer(1, [2, 2], Padding::Valid).int4_alike_on_cmsis_nn(&[1, 9, 9, 5], &[1, 3, 3, 5]));
        // Windows cut by SAME padding skip taps the counters assume were read.
        assert!(!layer(1, [2, 2], Padding::Same).int4_alike_on_cmsis_nn(&[1, 9, 9, 5], &[1, 3, 3, 5]));
        // A multiplier above 1 counts (C / 2)·M bytes per tap instead of C·M / 2.
        assert!(!layer(2, [1, 1], Padding::Valid).int4_alike_on_cmsis_nn(&[1, 9, 9, 7], &[1, 3, 3, 14]));
        assert!(!layer(3, [1, 1], Padding::Valid).int4_alike_on_cmsis_nn(&[1, 9, 9, 3], &[1, 2, 2, 9]));
        // A 1x1 window has one tap: nothing to miscount.
        assert!(layer(3, [1, 1], Padding::Same).int4_alike_on_cmsis_nn(&[1, 9, 9, 3], &[1, 1, 1, 9]));
        // Batches above 1 take the generic path too.
        assert!(!layer(1, [1, 1], Padding::Same).int4_alike_on_cmsis_nn(&[2, 9, 9, 5], &[1, 3, 3, 5]));
        // Explicit padding is written as a PAD before a VALID layer: no window is cut, but a
        // multiplier above 1 still miscounts, also where the unpadded input is smaller than the
        // window.
        let explicit = Padding::Explicit { top: 3, bottom: 0, left: 1, right: 0 };
        assert!(layer(1, [2, 2], explicit).int4_alike_on_cmsis_nn(&[1, 9, 9, 5], &[1, 3, 3, 5]));
        let explicit = Padding::Explicit { top: 0, bottom: 2, left: 3, right: 6 };
        assert!(!layer(2, [1, 2], explicit).int4_alike_on_cmsis_nn(&[1, 1, 10, 7], &[1, 3, 4, 14]));
    }
}
