//! DEQUANTIZE from int8 to float32 (`reference/dequantize.h`): `float(double(scale) · (q − zp))`.

use crate::{KernelError, QParamsS8};

/// TFLM `DequantizationParams` (the scale is held as `f64`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DequantizeParams {
    pub scale: f64,
    pub zero_point: i32,
}

pub fn prepare_dequantize_s8(input: QParamsS8) -> Result<DequantizeParams, KernelError> {
    input.validate("input")?;
    Ok(DequantizeParams { scale: input.scale as f64, zero_point: input.zero_point })
}

/// TFLM `reference_ops::Dequantize` for int8.
///
/// # Panics
/// If the slices differ in length.
pub fn dequantize_s8(params: &DequantizeParams, input: &[i8], output: &mut [f32]) {
    assert_eq!(input.len(), output.len());
    for (out, &q) in output.iter_mut().zip(input) {
        *out = (params.scale * (q as i32 - params.zero_point) as f64) as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        let params = prepare_dequantize_s8(QParamsS8::new(0.5, -3)).unwrap();
        let mut out = [0f32; 3];
        dequantize_s8(&params, &[-3, 1, -128], &mut out);
        assert_eq!(out, [0.0, 2.0, -62.5]);
    }
}
