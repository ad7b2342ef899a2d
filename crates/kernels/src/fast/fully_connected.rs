//! FULLY_CONNECTED, the bit-identical fast form of [`crate::fully_connected::fully_connected`]
//! (per tensor, any weight zero point: `w + weights_offset` is packed) and
//! [`crate::fully_connected::fully_connected_per_channel`]: a GEMM of the input rows, widened to
//! int16 `x + input_offset`, with the packed weights; on [`Isa::Avx512Vnni`], when the weights
//! (`w + weights_offset`) are int8, the byte GEMM of [`super::vnni`] on the rows as bytes.

use super::gemm::{gemm_rows, PackedB, Rows, MR};
use super::stage::OutputStage;
use super::vnni::{self, PackedQ};
use super::Isa;
use crate::fixedpoint::Rounding;
use crate::fully_connected::{FullyConnectedParams, FullyConnectedPerChannelParams, FullyConnectedShape};

/// A FULLY_CONNECTED prepared for [`FullyConnectedFast::eval`].
#[derive(Clone, Debug)]
pub struct FullyConnectedFast {
    shape: FullyConnectedShape,
    input_offset: i32,
    isa: Isa,
    weights: Weights,
    stage: OutputStage,
}

/// The weights, packed for one of the two GEMMs.
#[derive(Clone, Debug)]
enum Weights {
    Wide(PackedB),
    Bytes(PackedQ),
}

impl FullyConnectedFast {
    /// The per-tensor kernel's params, as [`crate::fully_connected::prepare_fully_connected`]
    /// returns them. `None` when the fast path does not cover them.
    pub fn per_tensor(
        params: &FullyConnectedParams,
        filter: &[i8],
        bias: Option<&[i32]>,
        isa: Isa,
    ) -> Option<FullyConnectedFast> {
        let units = params.shape.output_depth;
        Self::new(
            &params.shape,
            params.rounding,
            params.input_offset,
            params.weights_offset,
            (&vec![params.output_multiplier; units], &vec![params.output_shift; units]),
            (params.output_offset, params.quantized_activation_min, params.quantized_activation_max),
            filter,
            bias,
            isa,
        )
    }

    /// The per-channel kernel's params and multipliers, as
    /// [`crate::fully_connected::prepare_fully_connected_per_channel`] returns them.
    pub fn per_channel(
        params: &FullyConnectedPerChannelParams,
        output_multiplier: &[i32],
        output_shift: &[i32],
        filter: &[i8],
        bias: Option<&[i32]>,
        isa: Isa,
    ) -> Option<FullyConnectedFast> {
        Self::new(
            &params.shape,
            params.rounding,
            params.input_offset,
            0,
            (output_multiplier, output_shift),
            (params.output_offset, params.quantized_activation_min, params.quantized_activation_max),
            filter,
            bias,
            isa,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn new(
        shape: &FullyConnectedShape,
        rounding: Rounding,
        input_offset: i32,
        weights_offset: i32,
        (multiplier, shift): (&[i32], &[i32]),
        (offset, min, max): (i32, i32, i32),
        filter: &[i8],
        bias: Option<&[i32]>,
        isa: Isa,
    ) -> Option<FullyConnectedFast> {
        let FullyConnectedShape { accum_depth: depth, output_depth: units, .. } = *shape;
        // `w + weights_offset` must fit the int16 operand exactly (TFLM's zero points are int8).
        if rounding != Rounding::Double || !(-128..=128).contains(&weights_offset) {
            return None;
        }
        assert_eq!(filter.len(), units * depth);
        let isa = isa.checked();
        let weight = |k: usize, n: usize| filter[n * depth + k] as i32 + weights_offset;
        let bytes = isa == Isa::Avx512Vnni
            && vnni::pad_byte(input_offset).is_some()
            && filter.iter().all(|&w| i8::try_from(w as i32 + weights_offset).is_ok());
        let (weights, stage) = if bytes {
            let b = PackedQ::new(depth, units, |k, n| weight(k, n) as i8);
            let bias = b.folded_bias(bias, input_offset);
            let stage = OutputStage::new(b.padded_n(), Some(&bias), multiplier, shift, offset, min, max)?;
            (Weights::Bytes(b), stage)
        } else {
            let b = PackedB::new(depth, units, |k, n| weight(k, n) as i16);
            let stage = OutputStage::new(b.padded_n(), bias, multiplier, shift, offset, min, max)?;
            (Weights::Wide(b), stage)
        };
        Some(FullyConnectedFast { shape: *shape, input_offset, isa, weights, stage })
    }

    pub fn shape(&self) -> &FullyConnectedShape {
        &self.shape
    }

    pub fn isa(&self) -> Isa {
        self.isa
    }

    /// The int16 scratch [`FullyConnectedFast::eval`] needs.
    pub fn scratch_len(&self) -> usize {
        match &self.weights {
            Weights::Wide(b) => MR * b.kp,
            Weights::Bytes(b) => (vnni::MR * b.k4).div_ceil(2),
        }
    }

    /// The output of `input`: any number of rows of `accum_depth` values (the prepared batch
    /// count is not used).
    ///
    /// # Panics
    /// If `input` is not whole rows, `output` does not match, or `scratch` is short.
    pub fn eval(&self, input: &[i8], scratch: &mut [i16], output: &mut [i8]) {
        let FullyConnectedShape { accum_depth: depth, output_depth: units, .. } = self.shape;
        assert!(input.len().is_multiple_of(depth));
        let rows = input.len() / depth;
        assert_eq!(output.len(), rows * units);
        match &self.weights {
            Weights::Wide(b) => {
                let scratch = &mut scratch[..MR * b.kp];
                for (first, x) in (0..rows).step_by(MR).zip(input.chunks(MR * depth)) {
                    let n = MR.min(rows - first);
                    for (row, x) in scratch.chunks_exact_mut(b.kp).zip(x.chunks_exact(depth)) {
                        for (d, &x) in row.iter_mut().zip(x) {
                            *d = (x as i32 + self.input_offset) as i16;
                        }
                        row[depth..].fill(0);
                    }
                    let rows = Rows::contiguous(&scratch[..], b.kp, n);
                    gemm_rows(self.isa, b, &self.stage, &rows, &mut output[first * units..], units);
                }
            }
            Weights::Bytes(b) => {
                let scratch = &mut vnni::as_bytes(scratch)[..vnni::MR * b.k4];
                for (first, x) in (0..rows).step_by(vnni::MR).zip(input.chunks(vnni::MR * depth)) {
                    let n = vnni::MR.min(rows - first);
                    for (row, x) in scratch.chunks_exact_mut(b.k4).zip(x.chunks_exact(depth)) {
                        for (d, &x) in row.iter_mut().zip(x) {
                            *d = vnni::to_byte(x);
                        }
                    }
                    let rows = vnni::Rows::contiguous(scratch, b.k4, n);
                    // SAFETY: `Weights::Bytes` is only built on `Isa::Avx512Vnni`, after detection.
                    unsafe { vnni::gemm_rows(b, &self.stage, &rows, &mut output[first * units..], units) };
                }
            }
        }
    }
}
