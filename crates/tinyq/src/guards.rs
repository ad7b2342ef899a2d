//! Checks of the data quantization is calibrated on: calibration sets that cannot give useful
//! ranges (constant, all zeros) or that look unlike the evaluation data, and INT8 inputs whose
//! calibrated range clips the data a model is debugged on.

use tinyq_ir::{DType, Graph, Op, TensorId};

use crate::BoundInputs;

/// Per-channel statistics of one model input over a data set (channels = last axis).
struct ChannelStats {
    mean: Vec<f64>,
    std: Vec<f64>,
    min: f32,
    max: f32,
}

fn channel_stats(inputs: &BoundInputs, k: usize, channels: usize) -> Option<ChannelStats> {
    let channels = channels.max(1);
    let (mut sum, mut sq, mut n) = (vec![0f64; channels], vec![0f64; channels], vec![0u64; channels]);
    let (mut min, mut max) = (f32::INFINITY, f32::NEG_INFINITY);
    for i in 0..inputs.samples {
        let sample = inputs.sample_f32(i)?;
        for (j, &v) in sample.get(k)?.iter().enumerate() {
            let c = j % channels;
            sum[c] += v as f64;
            sq[c] += v as f64 * v as f64;
            n[c] += 1;
            min = min.min(v);
            max = max.max(v);
        }
    }
    let mean: Vec<f64> = sum.iter().zip(&n).map(|(&s, &n)| s / n.max(1) as f64).collect();
    let std =
        sq.iter().zip(&n).zip(&mean).map(|((&q, &n), &m)| (q / n.max(1) as f64 - m * m).max(0.0).sqrt()).collect();
    Some(ChannelStats { mean, std, min, max })
}

/// Fraction of the values of input `k` outside `[lo, hi]` (by more than `tol`).
fn outside(inputs: &BoundInputs, k: usize, lo: f32, hi: f32, tol: f32) -> f64 {
    let (mut out, mut all) = (0u64, 0u64);
    for i in 0..inputs.samples {
        let Some(sample) = inputs.sample_f32(i) else { return 0.0 };
        let Some(x) = sample.get(k) else { return 0.0 };
        out += x.iter().filter(|&&v| v < lo - tol || v > hi + tol).count() as u64;
        all += x.len() as u64;
    }
    out as f64 / all.max(1) as f64
}

/// Warnings about the calibration data of `g`'s inputs: constant or all-zero inputs, and, with
/// the evaluation data `eval`, channels whose mean or spread differ from it (the mean by more
/// than half the evaluation spread, or the spread by more than 2×) and evaluation values the
/// calibration range does not cover.
pub fn calibration_warnings(g: &Graph, calib: &BoundInputs, eval: Option<&BoundInputs>) -> Vec<String> {
    let mut warnings = Vec::new();
    for (k, &t) in g.inputs.iter().enumerate() {
        let name = &g.tensor(t).name;
        let channels = g.tensor(t).shape.last().copied().unwrap_or(1);
        let Some(c) = channel_stats(calib, k, channels) else { continue };
        if c.min == c.max {
            let what = if c.min == 0.0 { "all zeros".to_string() } else { format!("constant ({})", c.min) };
            warnings.push(format!(
                "calibration data for input `{name}` is {what}: every range downstream is calibrated on one value; calibrate on representative samples"
            ));
            continue;
        }
        let Some(e) = eval.and_then(|e| channel_stats(e, k, channels)) else { continue };
        let scale = e.std.iter().cloned().fold(0.0, f64::max).max(1e-12);
        let differ = (0..c.mean.len())
            .filter(|&ch| {
                let spread = e.std[ch].max(1e-3 * scale);
                (c.mean[ch] - e.mean[ch]).abs() > 0.5 * spread || c.std[ch] > 2.0 * spread || 2.0 * c.std[ch] < spread
            })
            .count();
        let tol = (c.max - c.min) / 255.0;
        let uncovered = eval.map_or(0.0, |e| outside(e, k, c.min, c.max, tol));
        if differ * 4 >= c.mean.len().max(1) || uncovered > 0.01 {
            warnings.push(format!(
                "calibration data for input `{name}` looks unlike --data: {differ} of {} channels (last axis) differ in mean or spread, and {:.1}% of --data's values fall outside the calibrated range [{:.4}, {:.4}]; calibrate on data preprocessed like the evaluation data",
                c.mean.len(),
                uncovered * 100.0,
                c.min,
                c.max
            ));
        }
    }
    warnings
}

/// The int8 parameters the data of input `k` of `q` is quantized with (the input's own, or
/// those of the QUANTIZE that reads a float input).
fn input_qparams(q: &Graph, t: TensorId) -> Option<(f32, i32)> {
    let of = |t: TensorId| {
        let p = q.tensor(t).qparams.as_ref()?;
        if q.tensor(t).dtype != DType::I8 {
            return None;
        }
        Some((*p.scale.first()?, *p.zero_point.first()?))
    };
    of(t).or_else(|| {
        let n = q.nodes.iter().find(|n| n.op == Op::Quantize && n.inputs.first() == Some(&t))?;
        of(n.outputs[0])
    })
}

/// Findings about the INT8 model's inputs on the float data `data` (the debugger lists them
/// before its layers): an input range that clips more than 1 % of the data (calibrated on other
/// data), or one calibrated on a constant.
pub fn input_findings(q: &Graph, data: &BoundInputs) -> Vec<String> {
    let mut found = Vec::new();
    for (k, &t) in q.inputs.iter().enumerate() {
        let Some((scale, zp)) = input_qparams(q, t) else { continue };
        let (lo, hi) = ((-128 - zp) as f32 * scale, (127 - zp) as f32 * scale);
        let clipped = outside(data, k, lo, hi, scale / 2.0);
        let name = q.tensor(t).name.trim_end_matches("_int8");
        if clipped > 0.01 {
            found.push(format!(
                "input `{name}`: {:.1}% of the data falls outside the INT8 input range [{lo:.4}, {hi:.4}] fixed at calibration: the calibration data does not look like this data (constant, all zeros or preprocessed differently); no per-layer change recovers that — quantize again with calibration data preprocessed like this data",
                clipped * 100.0
            ));
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use tinyq_data::{write_npz, ArrayData, Dataset, LoadOptions, NdArray};
    use tinyq_ir::{QParams, Tensor};

    fn graph(dtype: DType) -> Graph {
        let mut g = Graph::default();
        let mut x = Tensor::activation("x", vec![1, 3], dtype);
        if dtype == DType::I8 {
            x.qparams = Some(QParams { scale: vec![1.0 / 64.0], zero_point: vec![0], axis: None });
        }
        let x = g.add_tensor(x);
        g.inputs = vec![x];
        g.outputs = vec![x];
        g
    }

    fn bound(g: &Graph, values: Vec<f32>) -> BoundInputs {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static FILES: AtomicUsize = AtomicUsize::new(0);
        let k = FILES.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("tinyq-guards-{}-{k}.npz", std::process::id()));
        let x = NdArray { shape: vec![values.len() / 3, 3], data: ArrayData::F32(values) };
        write_npz(&path, &[("x", &x)]).unwrap();
        let ds = Dataset::open(&path, &LoadOptions::default()).unwrap();
        let b = crate::bind_inputs(g, &ds, &["x".into()]).unwrap();
        std::fs::remove_file(&path).unwrap();
        b
    }

    fn ramp(n: usize, scale: f32, shift: f32) -> Vec<f32> {
        (0..n * 3).map(|i| ((i * 7919 % 101) as f32 / 50.0 - 1.0) * scale + shift).collect()
    }

    #[test]
    fn constant_and_zero_calibration_is_named() {
        let g = graph(DType::F32);
        let w = calibration_warnings(&g, &bound(&g, vec![0.0; 30]), None);
        assert!(w.len() == 1 && w[0].contains("all zeros") && w[0].contains("`x`"), "{w:?}");
        let w = calibration_warnings(&g, &bound(&g, vec![0.5; 30]), None);
        assert!(w.len() == 1 && w[0].contains("constant (0.5)"), "{w:?}");
        assert!(calibration_warnings(&g, &bound(&g, ramp(40, 1.0, 0.0)), None).is_empty());
    }

    #[test]
    fn calibration_unlike_the_evaluation_data_is_named() {
        let g = graph(DType::F32);
        let eval = bound(&g, ramp(50, 1.0, 0.0));
        // Same distribution: no warning.
        assert!(calibration_warnings(&g, &bound(&g, ramp(40, 1.0, 0.0)), Some(&eval)).is_empty());
        // Scaled by 0.35 and shifted: every channel differs, most values lie outside.
        let w = calibration_warnings(&g, &bound(&g, ramp(40, 0.35, 0.4)), Some(&eval));
        assert!(w.len() == 1 && w[0].contains("3 of 3 channels") && w[0].contains("outside"), "{w:?}");
    }

    #[test]
    fn an_int8_input_range_that_clips_the_data_is_a_finding() {
        let q = graph(DType::I8); // range [-2, 1.98]
        let fits = bound(&graph(DType::F32), ramp(40, 1.0, 0.0));
        assert!(input_findings(&q, &fits).is_empty());
        let wide = bound(&graph(DType::F32), ramp(40, 4.0, 0.0));
        let f = input_findings(&q, &wide);
        assert!(f.len() == 1 && f[0].contains("input `x`") && f[0].contains("outside the INT8 input range"), "{f:?}");
    }
}
