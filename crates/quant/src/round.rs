//! Rounding half away from zero without a call to libm.
//!
//! Rust's `f32::round` and `f64::round` are calls to `roundf` / `round` on x86-64 targets without
//! SSE4.1; in the loops that round every activation to its int8 grid (calibration's simulations,
//! histograms' range search) the call costs more than the arithmetic around it and keeps the loop
//! from being vectorized. These give the same results bit for bit, from truncation (one
//! conversion instruction) and the exact remainder `x − trunc(x)`.

/// `x.round() as i32`: half away from zero, saturating at `i32::MIN` / `i32::MAX`, NaN → 0.
#[inline]
pub fn round_i32(x: f32) -> i32 {
    // Truncation toward zero, saturating, NaN → 0.
    let t = x as i32;
    // Exact: 0 for integral x (all |x| ≥ 2^23), and for smaller x, trunc(x) lies within
    // [x / 2, x] (Sterbenz) or is 0.
    let f = x - t as f32;
    // Where `t` saturated, `x` is beyond the range and the result stays saturated.
    t + ((f >= 0.5) & (t != i32::MAX)) as i32 - ((f <= -0.5) & (t != i32::MIN)) as i32
}

/// `x.round()` for f64: half away from zero, the sign of zero kept, NaN and infinities unchanged.
#[inline]
pub fn round_f64(x: f64) -> f64 {
    // 2^52: every f64 at or beyond it is integral.
    if x.is_nan() || x.abs() >= 4_503_599_627_370_496.0 {
        return x;
    }
    let t = (x as i64) as f64;
    let f = x - t;
    (t + (f >= 0.5) as i64 as f64 - (f <= -0.5) as i64 as f64).copysign(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EDGES32: [f32; 22] = [
        0.0,
        0.5,
        1.5,
        2.5,
        0.49999997,
        0.50000006,
        1.4999999,
        8388607.5,
        8388608.0,
        16777215.0,
        2147483520.0,
        2147483648.0,
        4294967296.0,
        1e-45,
        f32::MIN_POSITIVE,
        127.5,
        128.49998,
        3.4028235e38,
        f32::INFINITY,
        f32::NAN,
        1.0,
        1e10,
    ];

    /// Every 251st f32 bit pattern (about 17 million, all exponents and signs) and the edges.
    #[test]
    fn round_i32_matches_std_round_then_cast() {
        let check = |x: f32| assert_eq!(round_i32(x), x.round() as i32, "{x:e} ({:#x})", x.to_bits());
        for x in EDGES32 {
            check(x);
            check(-x);
        }
        (0..u32::MAX).step_by(251).map(f32::from_bits).for_each(check);
    }

    #[test]
    fn round_f64_matches_std_round() {
        let check = |x: f64| {
            let (a, b) = (round_f64(x), x.round());
            assert!(a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()), "{x:e}: {a} vs {b}");
        };
        let edges = [0.0, 0.5, 2.5, 0.49999999999999994, 4503599627370495.5, 4503599627370496.0, 9.3e18, 1e300];
        edges.iter().chain(&[f64::INFINITY, f64::NAN, f64::MIN_POSITIVE, 5e-324]).for_each(|&x| {
            check(x);
            check(-x)
        });
        // Every 2^40 + 17th f64 bit pattern, and a dense sweep of the small values the quantizers see.
        (0..u64::MAX).step_by((1 << 40) + 17).map(f64::from_bits).for_each(check);
        (-400_000..400_000).map(|k| k as f64 / 997.0).for_each(check);
    }
}
