//! Task metrics over a run's first output.

use serde::Serialize;
use tinyq_data::NdArray;

use crate::TinyqError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// Fraction of samples whose arg-max output equals the label (labels as class ids or one-hot).
    Top1,
    /// Root mean square error between outputs and float labels.
    Rmse,
    /// Area under the ROC curve of a per-sample score against 0/1 labels.
    Auc,
}

impl Metric {
    pub fn parse(s: &str) -> Option<Metric> {
        match s {
            "top1" => Some(Metric::Top1),
            "rmse" => Some(Metric::Rmse),
            "auc" => Some(Metric::Auc),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Metric::Top1 => "top1",
            Metric::Rmse => "rmse",
            Metric::Auc => "auc",
        }
    }
}

impl std::str::FromStr for Metric {
    type Err = String;
    fn from_str(s: &str) -> Result<Metric, String> {
        Metric::parse(s).ok_or_else(|| "expected top1, rmse or auc".into())
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct MetricValue {
    pub metric: Metric,
    pub value: f64,
    pub samples: usize,
}

/// Top-1 for integer class labels and multi-value outputs, RMSE otherwise.
pub fn default_metric(labels: &NdArray, per_sample: usize) -> Metric {
    let integral = labels.to_i64().is_some();
    if integral && per_sample > 1 {
        Metric::Top1
    } else {
        Metric::Rmse
    }
}

fn argmax(v: &[f32]) -> usize {
    v.iter().enumerate().fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &x)| if x > bv { (i, x) } else { (bi, bv) }).0
}

/// Scores `outputs` (`samples × per_sample` values) against `labels`.
pub fn compute_metric(
    metric: Metric,
    outputs: &[f32],
    per_sample: usize,
    labels: &NdArray,
    samples: usize,
) -> Result<MetricValue, TinyqError> {
    let bad = |msg: String| Err(TinyqError::Metric(msg));
    let value = match metric {
        Metric::Top1 => {
            let truth: Vec<usize> = if labels.len() == samples {
                let Some(ids) = labels.to_i64() else { return bad("top1 needs integer class labels".into()) };
                if let Some((i, v)) = ids.iter().enumerate().find(|(_, &v)| v < 0 || v as usize >= per_sample) {
                    return bad(format!("label {v} of sample {i} is not one of the model's {per_sample} classes"));
                }
                ids.into_iter().map(|v| v as usize).collect()
            } else if labels.len() == samples * per_sample {
                labels.to_f32().chunks_exact(per_sample).map(argmax).collect()
            } else {
                return bad(format!("{} labels for {samples} samples", labels.len()));
            };
            let hits = outputs.chunks_exact(per_sample).zip(&truth).filter(|(o, &t)| argmax(o) == t).count();
            hits as f64 / samples as f64
        }
        Metric::Rmse => {
            let y = labels.to_f32();
            if y.len() != outputs.len() {
                return bad(format!(
                    "{} label values for {} output values ({samples} samples)",
                    y.len(),
                    outputs.len()
                ));
            }
            let se: f64 = outputs.iter().zip(&y).map(|(&o, &t)| ((o - t) as f64).powi(2)).sum();
            (se / y.len() as f64).sqrt()
        }
        Metric::Auc => {
            if labels.len() != samples {
                return bad(format!("{} labels for {samples} samples", labels.len()));
            }
            let score: Vec<f32> = match per_sample {
                1 => outputs.to_vec(),
                2 => outputs.chunks_exact(2).map(|c| c[1]).collect(),
                n => return bad(format!("auc needs one score (or two class outputs) per sample, the model gives {n}")),
            };
            let Some(y) = labels.to_i64().filter(|y| y.iter().all(|&v| v == 0 || v == 1)) else {
                return bad("auc needs 0/1 labels".into());
            };
            roc_auc(&score, &y)
                .ok_or_else(|| TinyqError::Metric("auc needs both positive and negative labels".into()))?
        }
    };
    Ok(MetricValue { metric, value, samples })
}

/// Mann–Whitney form of the ROC AUC, ties counted half.
fn roc_auc(score: &[f32], y: &[i64]) -> Option<f64> {
    let mut idx: Vec<usize> = (0..score.len()).collect();
    idx.sort_by(|&a, &b| score[a].total_cmp(&score[b]));
    let mut ranks = vec![0f64; score.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && score[idx[j + 1]] == score[idx[i]] {
            j += 1;
        }
        let r = (i + j) as f64 / 2.0 + 1.0;
        idx[i..=j].iter().for_each(|&k| ranks[k] = r);
        i = j + 1;
    }
    let pos = y.iter().filter(|&&v| v == 1).count() as f64;
    let neg = y.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return None;
    }
    let rank_sum: f64 = ranks.iter().zip(y).filter(|(_, &v)| v == 1).map(|(r, _)| r).sum();
    Some((rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tinyq_data::ArrayData;

    fn arr(shape: Vec<usize>, data: ArrayData) -> NdArray {
        NdArray { shape, data }
    }

    #[test]
    fn top1_counts_argmax_hits() {
        let out = [0.1, 0.9, 0.8, 0.2, 0.3, 0.7];
        let y = arr(vec![3], ArrayData::I64(vec![1, 0, 0]));
        let m = compute_metric(Metric::Top1, &out, 2, &y, 3).unwrap();
        assert!((m.value - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn rmse_matches_hand_computation() {
        let y = arr(vec![2, 1], ArrayData::F32(vec![1.0, -1.0]));
        let m = compute_metric(Metric::Rmse, &[2.0, 1.0], 1, &y, 2).unwrap();
        assert!((m.value - (2.5f64).sqrt()).abs() < 1e-12);
    }

    #[test]
    fn auc_of_perfect_and_reversed_scores() {
        let y = arr(vec![4], ArrayData::I64(vec![0, 0, 1, 1]));
        let perfect = compute_metric(Metric::Auc, &[0.1, 0.2, 0.8, 0.9], 1, &y, 4).unwrap();
        let reversed = compute_metric(Metric::Auc, &[0.9, 0.8, 0.2, 0.1], 1, &y, 4).unwrap();
        assert_eq!(perfect.value, 1.0);
        assert_eq!(reversed.value, 0.0);
    }

    #[test]
    fn labels_outside_the_classes_are_an_error() {
        let y = arr(vec![2], ArrayData::I64(vec![0, 7]));
        let err = compute_metric(Metric::Top1, &[0.0; 4], 2, &y, 2).unwrap_err().to_string();
        assert!(err.contains("label 7 of sample 1"), "{err}");
    }

    #[test]
    fn label_count_mismatch_is_an_error() {
        let y = arr(vec![5], ArrayData::I64(vec![0; 5]));
        assert!(compute_metric(Metric::Top1, &[0.0; 6], 2, &y, 3).is_err());
    }
}
