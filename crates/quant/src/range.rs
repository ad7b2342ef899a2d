//! Calibration statistics and the range each method picks from them.

use std::str::FromStr;

use crate::round::round_f64;

/// Bins of calibration histograms.
pub const HISTOGRAM_BINS: usize = 2048;

/// How a tensor's quantization range is chosen from calibration data.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Calibration {
    /// The observed minimum and maximum.
    MinMax,
    /// Clip the given percentage of mass in each tail (e.g. 99.99 keeps 99.99 % below the top).
    Percentile(f64),
    /// TensorRT-style: the clipping threshold minimizing the KL divergence between the histogram
    /// and its int8 quantization.
    Entropy,
    /// The clipping range minimizing the expected squared quantization error.
    Mse,
    /// Chosen per tensor by the facade, from the other methods' ranges, by the error each causes
    /// downstream on the calibration set; on its own (without that search) it is [`Mse`].
    ///
    /// [`Mse`]: Calibration::Mse
    Auto,
}

impl Calibration {
    pub fn needs_histogram(self) -> bool {
        !matches!(self, Calibration::MinMax)
    }
}

impl FromStr for Calibration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once('=') {
            None if s == "minmax" => Ok(Calibration::MinMax),
            None if s == "entropy" => Ok(Calibration::Entropy),
            None if s == "mse" => Ok(Calibration::Mse),
            None if s == "auto" => Ok(Calibration::Auto),
            None if s == "percentile" => Ok(Calibration::Percentile(99.99)),
            Some(("percentile", p)) => match p.parse::<f64>() {
                Ok(v) if v > 50.0 && v <= 100.0 => Ok(Calibration::Percentile(v)),
                _ => Err(format!("percentile `{p}`: expected a number in (50, 100]")),
            },
            _ => Err(format!("`{s}`: expected auto, minmax, percentile[=P], entropy or mse")),
        }
    }
}

/// A fixed-bin histogram over `[lo, hi]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Histogram {
    pub lo: f32,
    pub hi: f32,
    pub counts: Vec<u64>,
}

impl Histogram {
    pub fn new(lo: f32, hi: f32) -> Histogram {
        Histogram { lo, hi, counts: vec![0; HISTOGRAM_BINS] }
    }

    fn width(&self) -> f64 {
        (self.hi as f64 - self.lo as f64) / self.counts.len() as f64
    }

    pub fn add(&mut self, values: &[f32]) {
        let (lo, w, n) = (self.lo as f64, self.width(), self.counts.len());
        if w <= 0.0 {
            self.counts[0] += values.len() as u64;
            return;
        }
        // One multiplication per value (a division costs several times more).
        let inv = 1.0 / w;
        let top = (n - 1) as f64;
        // `floor(x).clamp(0, n − 1)`: truncation equals floor from 0 up, and `max` sends NaN to 0
        // as the cast of a NaN would (no call to libm's floor).
        let bin = |v: f32| ((v as f64 - lo) * inv).max(0.0).min(top) as usize;
        if values.len() < 4 * n {
            values.iter().for_each(|&v| self.counts[bin(v)] += 1);
            return;
        }
        // Four banks of counts, summed at the end: runs of values in one bin (the zeros of a ReLU)
        // then make four independent chains of increments instead of one.
        let mut banks = vec![0u32; 4 * n];
        let (b0, rest) = banks.split_at_mut(n);
        let (b1, rest) = rest.split_at_mut(n);
        let (b2, b3) = rest.split_at_mut(n);
        // A bank receives at most a quarter of a chunk: no u32 count overflows.
        for chunk in values.chunks(1 << 31) {
            let quads = chunk.chunks_exact(4);
            for &v in quads.remainder() {
                b0[bin(v)] += 1;
            }
            for q in quads {
                b0[bin(q[0])] += 1;
                b1[bin(q[1])] += 1;
                b2[bin(q[2])] += 1;
                b3[bin(q[3])] += 1;
            }
            for (k, c) in self.counts.iter_mut().enumerate() {
                *c += b0[k] as u64 + b1[k] as u64 + b2[k] as u64 + b3[k] as u64;
            }
            [&mut *b0, &mut *b1, &mut *b2, &mut *b3].into_iter().for_each(|b| b.fill(0));
        }
    }

    fn center(&self, b: usize) -> f64 {
        self.lo as f64 + (b as f64 + 0.5) * self.width()
    }
}

/// Everything calibration keeps about one tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorStats {
    pub min: f32,
    pub max: f32,
    pub count: u64,
    /// NaN and ±Inf values seen (left out of min, max and the histogram).
    pub nonfinite: u64,
    pub hist: Option<Histogram>,
}

impl Default for TensorStats {
    fn default() -> Self {
        TensorStats { min: f32::INFINITY, max: f32::NEG_INFINITY, count: 0, nonfinite: 0, hist: None }
    }
}

impl TensorStats {
    /// Records values (min/max always, the histogram when one was set up).
    pub fn observe(&mut self, values: &[f32]) {
        let mut finite = true;
        // In locals: stores to `self` in the loop would be kept as such.
        let (mut min, mut max) = (self.min, self.max);
        for &v in values {
            if v.is_finite() {
                min = min.min(v);
                max = max.max(v);
            } else {
                self.nonfinite += 1;
                finite = false;
            }
        }
        (self.min, self.max) = (min, max);
        self.count += values.len() as u64;
        if let Some(h) = &mut self.hist {
            if finite {
                h.add(values);
            } else {
                h.add(&values.iter().copied().filter(|v| v.is_finite()).collect::<Vec<_>>());
            }
        }
    }

    /// Combines statistics of disjoint sample sets (histograms must share their bounds).
    pub fn merge(&mut self, other: &TensorStats) {
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.count += other.count;
        self.nonfinite += other.nonfinite;
        match (&mut self.hist, &other.hist) {
            (Some(a), Some(b)) => a.counts.iter_mut().zip(&b.counts).for_each(|(x, y)| *x += y),
            (None, Some(b)) => self.hist = Some(b.clone()),
            _ => {}
        }
    }
}

/// The `[min, max]` range a method picks. The result always contains 0 and lies within the
/// observed range widened to contain 0.
pub fn choose_range(method: Calibration, stats: &TensorStats) -> (f32, f32) {
    let (lo, hi) = (stats.min.min(0.0), stats.max.max(0.0));
    let Some(h) = stats.hist.as_ref().filter(|_| method.needs_histogram() && stats.count > 0 && hi > lo) else {
        return (lo, hi);
    };
    let (a, b) = match method {
        Calibration::MinMax => (lo, hi),
        Calibration::Percentile(p) => percentile(h, p),
        Calibration::Entropy => entropy(h),
        Calibration::Mse | Calibration::Auto => mse(h),
    };
    (a.clamp(lo, 0.0), b.clamp(0.0, hi))
}

fn percentile(h: &Histogram, p: f64) -> (f32, f32) {
    let total: u64 = h.counts.iter().sum();
    let tail = ((1.0 - p / 100.0) * total as f64).floor() as u64;
    let mut acc = 0;
    let mut first = 0;
    while first < h.counts.len() - 1 && acc + h.counts[first] <= tail {
        acc += h.counts[first];
        first += 1;
    }
    acc = 0;
    let mut last = h.counts.len() - 1;
    while last > first && acc + h.counts[last] <= tail {
        acc += h.counts[last];
        last -= 1;
    }
    let w = h.width();
    ((h.lo as f64 + first as f64 * w) as f32, (h.lo as f64 + (last + 1) as f64 * w) as f32)
}

/// Bins of |x|: folds the signed histogram around zero.
fn magnitude(h: &Histogram) -> (Vec<f64>, f64) {
    let w = h.width();
    let top = (h.lo as f64).abs().max(h.hi as f64);
    let n = h.counts.len();
    let mut mag = vec![0f64; n];
    for (b, &c) in h.counts.iter().enumerate() {
        let m = h.center(b).abs();
        let k = ((m / top) * n as f64).floor().min((n - 1) as f64) as usize;
        mag[k] += c as f64;
    }
    let _ = w;
    (mag, top / n as f64)
}

fn entropy(h: &Histogram) -> (f32, f32) {
    let (mut mag, w) = magnitude(h);
    // Exact zeros (half of every ReLU output) are represented exactly whatever the range;
    // left in, their spike swamps the divergence and the search clips far too hard.
    mag[0] = 0.0;
    let levels = if h.lo < 0.0 { 128 } else { 256 };
    let n = mag.len();
    let mut best = (f64::INFINITY, n);
    for i in (levels..=n).step_by(8) {
        let mut p: Vec<f64> = mag[..i].to_vec();
        p[i - 1] += mag[i..].iter().sum::<f64>();
        let mut q = vec![0f64; i];
        for l in 0..levels {
            let (s, e) = (l * i / levels, ((l + 1) * i / levels).max(l * i / levels + 1));
            let sum: f64 = mag[s..e].iter().sum();
            let nz = mag[s..e].iter().filter(|&&v| v > 0.0).count();
            if nz > 0 {
                for k in s..e {
                    if mag[k] > 0.0 {
                        q[k] = sum / nz as f64;
                    }
                }
            }
        }
        let (ps, qs): (f64, f64) = (p.iter().sum(), q.iter().sum());
        if ps == 0.0 || qs == 0.0 {
            continue;
        }
        let kl: f64 = p
            .iter()
            .zip(&q)
            .filter(|(&a, _)| a > 0.0)
            .map(|(&a, &b)| {
                let (a, b) = (a / ps, (b / qs).max(1e-12));
                a * (a / b).ln()
            })
            .sum();
        if kl < best.0 {
            best = (kl, i);
        }
    }
    let t = (best.1 as f64 * w) as f32;
    (-t, t)
}

fn mse(h: &Histogram) -> (f32, f32) {
    // The occupied bins only: most of a 2048-bin histogram is empty.
    let bins: Vec<(f64, f64)> =
        h.counts.iter().enumerate().filter(|(_, &c)| c > 0).map(|(k, &c)| (h.center(k), c as f64)).collect();
    let mut terms = vec![0f64; bins.len()];
    // Each bin's term computed apart (the loop vectorizes), then summed in bin order.
    let mut error = |a: f64, b: f64| -> f64 {
        let scale = ((b - a) / 255.0).max(f64::MIN_POSITIVE);
        let zp = round_f64(-128.0 - a / scale).clamp(-128.0, 127.0);
        grid_error_terms(&bins, scale, zp, &mut terms);
        terms.iter().sum()
    };
    // Coordinate descent: the best upper clip for the current lower one, then the other way
    // (each candidate's error computed once; the first of equal errors wins).
    let (lo, hi) = (h.lo as f64, h.hi as f64);
    let (mut a, mut b) = (lo, hi);
    let best = |end: f64, err: &mut dyn FnMut(f64) -> f64| {
        (1..=200)
            .map(|k| end * k as f64 / 200.0)
            .map(|x| (err(x), x))
            .fold((f64::INFINITY, end), |m, c| if c.0 < m.0 { c } else { m })
            .1
    };
    for _ in 0..2 {
        if hi > 0.0 {
            b = best(hi, &mut |x| error(a, x));
        }
        if lo < 0.0 {
            a = best(lo, &mut |x| error(x, b));
        }
    }
    (a as f32, b as f32)
}

/// Per bin `(x, c)`: `c · (x − (q − zp) · scale)²` with `q = round(x / scale + zp)` clamped to
/// int8, written to `out`.
fn grid_error_terms(bins: &[(f64, f64)], scale: f64, zp: f64, out: &mut [f64]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { grid_error_terms_avx2(bins, scale, zp, out) };
    }
    grid_error_terms_any(bins, scale, zp, out)
}

/// [`grid_error_terms`] compiled for AVX2 (the same IEEE operations, so the same results).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn grid_error_terms_avx2(bins: &[(f64, f64)], scale: f64, zp: f64, out: &mut [f64]) {
    grid_error_terms_any(bins, scale, zp, out)
}

// `max`/`min` rather than `clamp`: they cannot let a NaN through to the unchecked conversion.
#[allow(clippy::manual_clamp)]
#[inline(always)]
fn grid_error_terms_any(bins: &[(f64, f64)], scale: f64, zp: f64, out: &mut [f64]) {
    for (o, &(x, c)) in out.iter_mut().zip(bins) {
        // `round(y).clamp(-128, 127)` is `round(y.clamp(-128, 127))` (rounding is monotonic and
        // keeps integers); `y` is never NaN (finite `x`, positive `scale`), so `max`/`min` clamp
        // it like `clamp` would, and the truncation below is exact.
        let y = (x / scale + zp).max(-128.0).min(127.0);
        // SAFETY: `y` is finite and within [-128, 127].
        let t = unsafe { y.to_int_unchecked::<i32>() } as f64;
        let f = y - t;
        let q = (t + (f >= 0.5) as i32 as f64 - (f <= -0.5) as i32 as f64).copysign(y);
        *o = c * (x - (q - zp) * scale).powi(2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_counts_match_the_plain_floor_and_clamp() {
        // Enough values for the banked path, and a few for the direct one.
        for len in [20_000usize, 37] {
            let values: Vec<f32> = (0..len).map(|i| ((i * 7919 % 10007) as f32 / 1000.0 - 2.0).max(-0.5)).collect();
            let mut h = Histogram::new(-0.5, 8.0);
            h.add(&values);
            let (lo, w, n) = (h.lo as f64, h.width(), h.counts.len());
            let mut want = vec![0u64; n];
            for &v in &values {
                want[((v as f64 - lo) * (1.0 / w)).floor().clamp(0.0, (n - 1) as f64) as usize] += 1;
            }
            assert_eq!(h.counts, want, "{len} values");
        }
    }

    #[test]
    fn grid_error_terms_match_the_plain_formula_bit_for_bit() {
        let plain = |x: f64, c: f64, scale: f64, zp: f64| {
            let q = (x / scale + zp).round().clamp(-128.0, 127.0);
            c * (x - (q - zp) * scale).powi(2)
        };
        let bins: Vec<(f64, f64)> = (0..4000).map(|k| ((k as f64 - 1500.0) * 0.0137, (k % 7 + 1) as f64)).collect();
        for (scale, zp) in [(0.01, -128.0), (0.1, 0.0), (0.037, 17.0), (f64::MIN_POSITIVE, 127.0), (3.0, -5.0)] {
            let mut got = vec![0.0; bins.len()];
            grid_error_terms(&bins, scale, zp, &mut got);
            for (&(x, c), g) in bins.iter().zip(&got) {
                assert_eq!(g.to_bits(), plain(x, c, scale, zp).to_bits(), "x {x} scale {scale} zp {zp}");
            }
        }
    }

    fn stats_of(values: &[f32]) -> TensorStats {
        let mut s = TensorStats::default();
        s.observe(values);
        let (lo, hi) = (s.min.min(0.0), s.max.max(0.0));
        let mut with_hist = TensorStats { hist: Some(Histogram::new(lo, hi)), ..TensorStats::default() };
        with_hist.observe(values);
        with_hist
    }

    /// A bell-shaped sample with one far outlier.
    fn bell_with_outlier() -> Vec<f32> {
        let mut v: Vec<f32> = (0..20000).map(|i| ((i % 200) as f32 - 100.0) / 100.0 * ((i % 7) as f32 / 7.0)).collect();
        v.push(50.0);
        v
    }

    #[test]
    fn parses_methods() {
        assert_eq!("minmax".parse::<Calibration>(), Ok(Calibration::MinMax));
        assert_eq!("percentile=99.9".parse::<Calibration>(), Ok(Calibration::Percentile(99.9)));
        assert!("percentile=20".parse::<Calibration>().is_err());
        assert!("kl".parse::<Calibration>().is_err());
    }

    #[test]
    fn clipping_methods_ignore_a_lone_outlier_and_minmax_keeps_it() {
        let s = stats_of(&bell_with_outlier());
        assert_eq!(choose_range(Calibration::MinMax, &s).1, 50.0);
        for m in [Calibration::Percentile(99.9), Calibration::Entropy] {
            let (lo, hi) = choose_range(m, &s);
            assert!(hi < 5.0 && hi > 0.3, "{m:?}: {lo}..{hi}");
            assert!(lo <= 0.0, "{m:?}: {lo}");
        }
    }

    #[test]
    fn mse_clips_an_outlier_once_rounding_noise_outweighs_it() {
        // Rounding noise grows with the sample count times the squared range; one outlier's
        // clipping error does not. With 2M bulk values in [-1, 1] and one value at 50, the
        // squared error N·((h+1)/255)²/12 + (50-h)² is smallest near h = 13.
        let mut v: Vec<f32> = (0..2_000_000).map(|i| (i % 2001) as f32 / 1000.0 - 1.0).collect();
        v.push(50.0);
        let (lo, hi) = choose_range(Calibration::Mse, &stats_of(&v));
        assert!(hi > 10.0 && hi < 16.0, "{lo}..{hi}");
        assert!(lo <= -0.9, "{lo}..{hi}");
        let (_, hi) = choose_range(Calibration::Mse, &stats_of(&v[1_990_000..]));
        assert!(hi > 45.0, "with few samples the outlier is cheaper to keep: {hi}");
    }

    #[test]
    fn merged_statistics_equal_one_pass() {
        let v = bell_with_outlier();
        let whole = stats_of(&v);
        let (lo, hi) = (whole.min.min(0.0), whole.max.max(0.0));
        let mut a = TensorStats { hist: Some(Histogram::new(lo, hi)), ..TensorStats::default() };
        let mut b = a.clone();
        a.observe(&v[..7000]);
        b.observe(&v[7000..]);
        a.merge(&b);
        assert_eq!(a, whole);
    }

    #[test]
    fn constant_tensor_range_contains_zero() {
        let s = stats_of(&[0.0; 16]);
        assert_eq!(choose_range(Calibration::Entropy, &s), (0.0, 0.0));
        let s = stats_of(&[2.0; 16]);
        assert_eq!(choose_range(Calibration::MinMax, &s), (0.0, 2.0));
    }
}
