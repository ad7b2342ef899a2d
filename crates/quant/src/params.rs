//! TFLite's int8 rules: asymmetric activations, symmetric per-channel weights, int32 bias.
//! Source of the arithmetic: the TFLite quantization spec and the TF tooling's
//! `GetAsymmetricQuantizationParams` (all in float32), as summarized in `docs/numerics.md`.

/// Why parameters cannot be chosen.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum QuantError {
    #[error("range [{min}, {max}] is not finite")]
    NotFinite { min: f32, max: f32 },
    #[error("node `{node}` ({op}): {msg}")]
    Node { node: String, op: &'static str, msg: String },
    #[error("tensor `{tensor}` {msg}")]
    Tensor { tensor: String, msg: String },
    #[error("quantized graph is inconsistent: {0}")]
    Graph(String),
}

/// Scale and zero point of an int8 activation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ActivationQParams {
    pub scale: f32,
    pub zero_point: i32,
}

/// Parameters for an int8 activation covering `[min, max]`.
///
/// The range is first widened to contain 0 (so 0 is exactly representable). A range of width 0
/// (a tensor that is always 0) gets scale 1/256 and zero point −128: every value is exact and
/// the scale is never 0.
pub fn asymmetric_qparams(min: f32, max: f32) -> Result<ActivationQParams, QuantError> {
    if !min.is_finite() || !max.is_finite() {
        return Err(QuantError::NotFinite { min, max });
    }
    let (qmin, qmax) = (-128f32, 127f32);
    let (min, max) = (min.min(0.0), max.max(0.0));
    if max - min <= f32::MIN_POSITIVE {
        return Ok(ActivationQParams { scale: 1.0 / 256.0, zero_point: -128 });
    }
    let scale = (max - min) / (qmax - qmin);
    let zp_from_min = qmin - min / scale;
    let zero_point = if zp_from_min < qmin {
        qmin
    } else if zp_from_min > qmax {
        qmax
    } else {
        zp_from_min.round()
    };
    Ok(ActivationQParams { scale, zero_point: zero_point as i32 })
}

/// Symmetric int8 weights in [−127, 127], one scale per slice along `axis` of `shape`
/// (`max|w| / 127`; an all-zero slice gets scale 1 so the scale is never 0).
pub fn symmetric_per_channel(w: &[f32], shape: &[usize], axis: usize) -> (Vec<i8>, Vec<f32>) {
    symmetric_per_channel_q(w, shape, axis, 127)
}

/// Symmetric weights in [−`qmax`, `qmax`] (127 for int8, 7 for int4), one scale per slice along
/// `axis` of `shape`: `max|w| / qmax`, an all-zero slice scale 1.
pub fn symmetric_per_channel_q(w: &[f32], shape: &[usize], axis: usize, qmax: i8) -> (Vec<i8>, Vec<f32>) {
    let channels = shape[axis];
    let inner: usize = shape[axis + 1..].iter().product();
    let channel = |i: usize| (i / inner) % channels;
    let mut max_abs = vec![0f32; channels];
    for (i, &v) in w.iter().enumerate() {
        let c = channel(i);
        max_abs[c] = max_abs[c].max(v.abs());
    }
    let q = qmax as f32;
    let scales: Vec<f32> = max_abs.iter().map(|&m| if m > 0.0 { m / q } else { 1.0 }).collect();
    let values = w.iter().enumerate().map(|(i, &v)| (v / scales[channel(i)]).round().clamp(-q, q) as i8).collect();
    (values, scales)
}

/// int32 bias with scale `input_scale × weight_scale[c]` (computed in double, as TFLM does for
/// per-channel ops), rounded half away from zero and saturated.
pub fn quantize_bias(bias: &[f32], input_scale: f32, weight_scales: &[f32]) -> Vec<i32> {
    bias_steps(bias, input_scale, weight_scales).map(|v| v.clamp(i32::MIN as f64, i32::MAX as f64) as i32).collect()
}

/// Each bias value in steps of `input_scale × weight_scale[c]` (in double), rounded half away
/// from zero; `weight_scales` holds one scale or one per channel.
fn bias_steps<'a>(bias: &'a [f32], input_scale: f32, weight_scales: &'a [f32]) -> impl Iterator<Item = f64> + 'a {
    bias.iter().enumerate().map(move |(c, &b)| {
        let s = input_scale as f64 * weight_scales[c % weight_scales.len()] as f64;
        (b as f64 / s).round()
    })
}

/// Scale of an int16 activation covering `[min, max]` (the 16x8 scheme): symmetric, zero point
/// 0, `scale = max(|min|, |max|) / 32767` in float32. A range that is all 0 gets 2^-15.
pub fn symmetric_int16_scale(min: f32, max: f32) -> Result<f32, QuantError> {
    if !min.is_finite() || !max.is_finite() {
        return Err(QuantError::NotFinite { min, max });
    }
    let m = min.abs().max(max.abs());
    Ok(if m <= f32::MIN_POSITIVE { 1.0 / 32768.0 } else { m / 32767.0 })
}

/// int64 bias of a 16x8 layer: scale `input_scale × weight_scale[c]` in double, rounded half away
/// from zero and saturated.
pub fn quantize_bias_i64(bias: &[f32], input_scale: f32, weight_scales: &[f32]) -> Vec<i64> {
    bias_steps(bias, input_scale, weight_scales).map(|v| v.clamp(i64::MIN as f64, i64::MAX as f64) as i64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn int16_scales_are_symmetric() {
        assert_eq!(symmetric_int16_scale(-3.0, 1.0).unwrap(), 3.0 / 32767.0);
        assert_eq!(symmetric_int16_scale(0.0, 0.0).unwrap(), 1.0 / 32768.0);
        assert!(symmetric_int16_scale(0.0, f32::INFINITY).is_err());
        assert_eq!(quantize_bias_i64(&[1.0, -2.5], 0.5, &[0.001, 0.002]), vec![2000, -2500]);
        assert_eq!(quantize_bias_i64(&[1e9], 1e-6, &[1e-6]), vec![i64::MAX], "saturated");
    }

    #[test]
    fn relu_range_puts_zero_at_minus_128() {
        let p = asymmetric_qparams(0.0, 6.0).unwrap();
        assert_eq!(p.zero_point, -128);
        assert_eq!(p.scale, 6.0 / 255.0);
    }

    #[test]
    fn zero_width_range_has_a_usable_scale() {
        assert_eq!(asymmetric_qparams(0.0, 0.0).unwrap(), ActivationQParams { scale: 1.0 / 256.0, zero_point: -128 });
        assert!(asymmetric_qparams(f32::NAN, 1.0).is_err());
        assert!(asymmetric_qparams(0.0, f32::INFINITY).is_err());
    }

    #[test]
    fn all_zero_channel_keeps_a_nonzero_scale() {
        let (q, s) = symmetric_per_channel(&[0.0, 0.0, 1.0, -0.5], &[2, 2], 0);
        assert_eq!(s, [1.0, 1.0 / 127.0]);
        assert_eq!(q, [0, 0, 127, -64]);
    }

    proptest! {
        #[test]
        fn zero_is_exact_and_range_is_covered(a in -1e4f32..1e4, b in -1e4f32..1e4) {
            let (min, max) = (a.min(b), a.max(b));
            let p = asymmetric_qparams(min, max).unwrap();
            prop_assert!(p.scale > 0.0);
            prop_assert!((-128..=127).contains(&p.zero_point));
            let lo = (-128 - p.zero_point) as f32 * p.scale;
            let hi = (127 - p.zero_point) as f32 * p.scale;
            let tol = p.scale * 1.01;
            prop_assert!(lo <= min.min(0.0) + tol && hi >= max.max(0.0) - tol, "{lo}..{hi} vs {min}..{max}");
        }

        #[test]
        fn per_channel_weights_round_trip_within_half_a_step(w in proptest::collection::vec(-3f32..3.0, 12)) {
            let (q, s) = symmetric_per_channel(&w, &[3, 4], 0);
            for (i, (&v, &qv)) in w.iter().zip(&q).enumerate() {
                prop_assert!((v - qv as f32 * s[i / 4]).abs() <= s[i / 4] * 0.5001);
            }
        }
    }
}
