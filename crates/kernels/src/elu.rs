//! ELU on int8 through a 256-entry table, as TFLM computes it.
//!
//! Mirrors `micro/kernels/elu.cc`: `PopulateLookupTable<int8_t>` fills, for every int8 input
//! `q`, `clamp(round((transform(in_s · (q − zp_in))) · (1 / out_s)) + zp_out)` with
//! `transform(v) = v < 0 ? exp(v) − 1 : v`, all in `float` (`round` half away from zero), and
//! `EvalUsingLookupTable` reads it.

use crate::{KernelError, QParamsS8};

/// TFLM's `OpData` of ELU: the table, indexed by the input byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EluParams {
    pub table: [i8; 256],
}

/// Builds the table (TFLM `CalculateOpData`).
pub fn prepare_elu_s8(input: QParamsS8, output: QParamsS8) -> Result<EluParams, KernelError> {
    input.validate("input")?;
    output.validate("output")?;
    let inverse_scale = 1.0f32 / output.scale;
    let mut table = [0i8; 256];
    for val in -128i32..=127 {
        let dequantized = input.scale * (val - input.zero_point) as f32;
        let transformed = if dequantized < 0.0 { dequantized.exp() - 1.0 } else { dequantized };
        let rescaled = (transformed * inverse_scale).round();
        let quantized = (rescaled + output.zero_point as f32) as i32;
        table[val as i8 as u8 as usize] = quantized.clamp(-128, 127) as i8;
    }
    Ok(EluParams { table })
}

/// TFLM `EvalUsingLookupTable`.
///
/// # Panics
/// If the slices differ in length.
pub fn elu_s8(p: &EluParams, input: &[i8], output: &mut [i8]) {
    assert_eq!(input.len(), output.len());
    for (o, &x) in output.iter_mut().zip(input) {
        *o = p.table[x as u8 as usize];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_follows_the_float_function() {
        let (input, output) = (QParamsS8::new(0.05, 10), QParamsS8::new(0.03, -90));
        let p = prepare_elu_s8(input, output).unwrap();
        let mut out = [0i8; 3];
        // 0.5 → 16.67 → 17 − 90 = −73; 0 → −90; −2 → e^−2 − 1 = −0.8647 → −28.8 → −29 − 90 = −119
        elu_s8(&p, &[20, 10, -30], &mut out);
        assert_eq!(out, [-73, -90, -119]);
    }
}
