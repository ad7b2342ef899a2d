//! Fake quantization: an activation's int8 grid, the integer kernels' requantization of
//! accumulator layers, and the straight-through gradient of the rounding.

use tinyq_kernels::fixedpoint::{multiply_by_quantized_multiplier, quantize_multiplier};

/// An activation's int8 grid.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Grid {
    pub(crate) scale: f32,
    pub(crate) zero_point: i32,
}

impl Grid {
    pub(crate) fn lo(self) -> f32 {
        (-128 - self.zero_point) as f32 * self.scale
    }

    pub(crate) fn hi(self) -> f32 {
        (127 - self.zero_point) as f32 * self.scale
    }

    pub(crate) fn apply(self, x: f32) -> f32 {
        let q = (round_half_away((x / self.scale) as f64) as f32 + self.zero_point as f32).clamp(-128.0, 127.0);
        (q - self.zero_point as f32) * self.scale
    }
}

/// How an int8 conv, depthwise conv or dense layer rounds its int32 accumulator to its output,
/// as the integer kernels (and TFLM) do: per output channel (the last axis), a fixed-point
/// multiplier and shift, rounded twice. Simulating this rather than `round(x / scale)` matters
/// where a value sits within a hair of a rounding tie: on a constant image background a whole
/// channel can sit there and flip together.
#[derive(Clone, Debug)]
pub(crate) struct Requant {
    /// Accumulator units per real unit, per channel (`1 / (input_scale × weight_scale[c])`).
    acc_per_unit: Vec<f64>,
    multiplier: Vec<(i32, i32)>,
}

impl Requant {
    pub(crate) fn new(input_scale: f32, weight_scales: &[f32], output_scale: f32) -> Option<Requant> {
        let eff = |s: f32| input_scale as f64 * s as f64 / output_scale as f64;
        let multiplier = weight_scales
            .iter()
            .map(|&s| quantize_multiplier(eff(s)).ok().map(|q| (q.multiplier, q.shift)))
            .collect::<Option<Vec<_>>>()?;
        Some(Requant {
            acc_per_unit: weight_scales.iter().map(|&s| 1.0 / (input_scale as f64 * s as f64)).collect(),
            multiplier,
        })
    }

    /// `x` (the layer's float result from int8-grid operands, fused activation applied) on the
    /// output grid, rounded the integer kernels' way.
    pub(crate) fn apply(&self, x: &[f32], grid: Grid) -> Vec<f32> {
        let zp = grid.zero_point as i64;
        let one = |v: f32, per_unit: f64, (m, shift): (i32, i32)| {
            // The value is a whole number of accumulator units up to float error.
            let acc = round_half_away(v as f64 * per_unit).clamp(i32::MIN as f64, i32::MAX as f64) as i32;
            let q = (multiply_by_quantized_multiplier(acc, m, shift) as i64 + zp).clamp(-128, 127);
            (q - zp) as f32 * grid.scale
        };
        let mut out = vec![0f32; x.len()];
        wide(
            #[inline(always)]
            || {
                if let ([per_unit], [m]) = (&self.acc_per_unit[..], &self.multiplier[..]) {
                    for (o, &v) in out.iter_mut().zip(x) {
                        *o = one(v, *per_unit, *m);
                    }
                    return;
                }
                let channels = self.acc_per_unit.len();
                for (orow, row) in out.chunks_exact_mut(channels).zip(x.chunks_exact(channels)) {
                    for (((o, &v), &u), &m) in orow.iter_mut().zip(row).zip(&self.acc_per_unit).zip(&self.multiplier) {
                        *o = one(v, u, m);
                    }
                }
            },
        );
        out
    }
}

/// Runs `f` compiled for AVX-512 (F and DQ) where the CPU has it: the per-element rounding loops
/// of fake quantization vectorize there (f64 ↔ i64 conversions, 64-bit multiplies); elsewhere as
/// built. The arithmetic is the same integer and f64 arithmetic either way.
#[inline(always)]
pub(crate) fn wide<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512dq") {
        #[target_feature(enable = "avx512f,avx512dq")]
        fn run<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        // SAFETY: the CPU has the features `run` is compiled for (checked just above).
        return unsafe { run(f) };
    }
    f()
}

/// Rounding half away from zero (`f64::round`) without a libm call on the hot path; exact for
/// values that came from f32 and for any |x| < 2^52.
#[inline]
fn round_half_away(x: f64) -> f64 {
    (x + 0.5f64.copysign(x)) as i64 as f64
}

/// Passes `grad` straight through the rounding of `pre` to `grid` (zeroing it where the value
/// was clamped) and returns the gradient w.r.t. the range's ends: a clamped value's gradient
/// goes to the end it was clamped to; an in-range value moves with the step size
/// (`d q / d scale = round(x/s) − x/s`, the scale being `(hi − lo)/255`).
pub(crate) fn straight_through(grad: &mut [f32], pre: &[f32], grid: Grid) -> [f64; 2] {
    let (lo, hi) = (grid.lo(), grid.hi());
    let (mut dlo, mut dhi) = (0f64, 0f64);
    for (g, &x) in grad.iter_mut().zip(pre) {
        if x < lo {
            dlo += *g as f64;
            *g = 0.0;
        } else if x > hi {
            dhi += *g as f64;
            *g = 0.0;
        } else {
            let u = (x / grid.scale) as f64;
            let d = *g as f64 * (round_half_away(u) - u) / 255.0;
            dhi += d;
            dlo -= d;
        }
    }
    [dlo, dhi]
}
