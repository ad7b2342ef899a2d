//! `tinyq quantize`: flags → [`tinyq::jobs::QuantizeRequest`], the outcome printed.

use anyhow::{anyhow, bail, Result};
use serde_json::json;
use tinyq::jobs::{BudgetRequest, DataSource, DataSpec, Io, LabelledData, PerTensor, QuantizeOutcome, QuantizeRequest};
use tinyq::TinyqError;

use crate::args::QuantizeArgs;
use crate::commands::{load, load_options, parse_kernels, parse_metric, same_file, Bars};
use crate::output::Staged;
use crate::render;

/// `--per-tensor[=all|dense]`.
pub(crate) fn per_tensor_flag(v: Option<&str>) -> Result<PerTensor> {
    v.map_or(Ok(PerTensor::None), |s| s.parse().map_err(|e| anyhow!("--per-tensor={s}: {e}")))
}

/// `--io int8|float`.
pub(crate) fn io_flag(v: &str) -> Result<Io> {
    v.parse().map_err(|e| anyhow!("--io `{v}`: {e}"))
}

/// The request the flags describe; flag combinations that only the CLI has are checked here.
fn request(a: &QuantizeArgs) -> Result<QuantizeRequest> {
    let calibration: tinyq::Calibration = a.calibration.parse().map_err(|e| anyhow!("--calibration {e}"))?;
    let io = io_flag(&a.io)?;
    let metric = parse_metric(a.metric.as_deref())?;
    let (per_tensor, per_tensor_dense) = per_tensor_flag(a.per_tensor.as_deref())?.flags();
    let load = load_options(&a.load)?;
    let req = QuantizeRequest {
        calib: DataSpec { source: DataSource::file(&a.calib, load.clone()), keys: a.x.clone(), limit: a.calib_samples },
        options: tinyq::QuantizeOptions {
            calibration,
            per_tensor,
            per_tensor_dense,
            bias_correction: a.bias_correction,
            equalize: a.equalize,
            choose_corrections: !a.no_corrections,
            adaround: a.adaround,
            weights: a.weights.parse().map_err(|e| anyhow!("--weights {}: {e}", a.weights))?,
            kernels: a.kernels.as_deref().map(parse_kernels).transpose()?,
            float_io: io == Io::Float,
            keep_float: a.keep_float.clone(),
            int16: a.int16.clone(),
        },
        eval: a.data.as_ref().map(|d| LabelledData {
            source: DataSource::file(d, load.clone()),
            x: a.eval_x.clone(),
            y: a.y.clone(),
        }),
        metric,
        budget: a.max_drop.map(|max_drop| BudgetRequest {
            options: tinyq::budget::BudgetOptions {
                max_drop,
                allow_float: a.allow_float,
                allow_int16: !a.no_int16,
                max_candidates: a.max_candidates,
            },
            tune: a.tune_data.as_ref().map(|t| DataSource::file(t, load.clone())),
        }),
        output: a.output.clone(),
    };
    req.check()?;
    if a.max_drop.is_none() {
        if a.allow_float {
            bail!("--allow-float goes with --max-drop (to keep chosen layers in float, name them with --keep-float)");
        }
        if a.no_int16 {
            bail!("--no-int16 goes with --max-drop");
        }
        if a.tune_data.is_some() {
            bail!("--tune-data goes with --max-drop");
        }
    }
    Ok(req)
}

pub fn quantize(a: &QuantizeArgs) -> Result<()> {
    if same_file(&a.output, &a.model)
        || same_file(&a.output, &a.calib)
        || a.data.as_deref().is_some_and(|d| same_file(&a.output, d))
    {
        bail!("-o {}: refusing to overwrite an input file", a.output.display());
    }
    if a.output.extension().and_then(|e| e.to_str()) != Some("tflite") {
        bail!("-o {}: the output must be a .tflite file", a.output.display());
    }
    let req = request(a)?;
    let out = Staged::file(&a.output, "-o")?;
    let model = load(&a.model)?;
    let bars = Bars::default();
    let outcome = match tinyq::jobs::quantize_job(&model, &req, &bars) {
        Err(e @ TinyqError::BudgetNotMet { .. }) => {
            bars.end_all();
            if let TinyqError::BudgetNotMet { report, .. } = &e {
                if a.json {
                    println!("{}", json!({ "model": a.model.display().to_string(), "budget": report }));
                } else {
                    print_budget(report);
                }
            }
            return Err(e.into());
        }
        other => other?,
    };
    out.write(&outcome.bytes)?;
    // Every step succeeded: only now does the file appear.
    out.commit()?;
    if a.json {
        println!("{}", outcome_json(a, &req, &outcome));
    } else {
        print_outcome(a, &outcome);
    }
    Ok(())
}

fn outcome_json(a: &QuantizeArgs, req: &QuantizeRequest, o: &QuantizeOutcome) -> serde_json::Value {
    let mut body = o.to_json(req);
    body["model"] = json!(a.model.display().to_string());
    body["output"] = json!(a.output.display().to_string());
    body["calibration"] = json!(a.calibration);
    body
}

fn print_outcome(a: &QuantizeArgs, o: &QuantizeOutcome) {
    if let Some(report) = &o.budget {
        print_budget(report);
    }
    let rows = o
        .ranges
        .iter()
        .map(|r| {
            vec![
                r.tensor.clone(),
                format!("{:.4} … {:.4}", r.observed.0, r.observed.1),
                format!("{:.4} … {:.4}", r.chosen.0, r.chosen.1),
                r.method.clone(),
                format!("{:.6}", r.scale),
                r.zero_point.to_string(),
            ]
        })
        .collect();
    println!("{}", render::table(&["tensor", "observed", "chosen", "method", "scale", "zero point"], rows));
    let (fp32_bytes, int8_bytes) = (o.fp32_weight_bytes, o.flash.total);
    println!(
        "{} → {} · FP32 weights {} → INT8 file {} ({:.2}×, {} of it quantization parameters) · {} calibration samples, {} · {:.2} s",
        a.model.display(),
        a.output.display(),
        render::bytes(fp32_bytes),
        render::bytes(int8_bytes),
        int8_bytes as f64 / fp32_bytes.max(1) as f64,
        render::bytes(o.flash.quantization),
        o.calibration_samples,
        calibration_summary(&a.calibration, o.auto.as_ref(), &o.ranges),
        o.seconds
    );
    if let Some(c) = &o.corrections {
        println!("{}", corrections_summary(c));
    }
    for w in &o.warnings {
        println!("warning: {w}");
    }
    if let Some(p) = &o.metrics {
        let (f, q) = (&p.fp32, &p.int8);
        println!(
            "{}",
            render::table(
                &["metric", "FP32", "INT8", "change"],
                vec![vec![
                    f.metric.name().into(),
                    format!("{:.4}", f.value),
                    format!("{:.4}", q.value),
                    format!("{:+.4}", q.value - f.value)
                ]]
            )
        );
    }
    if let (Some(h), Some(b), Some(tune)) = (&o.held_out, &o.budget, &a.tune_data) {
        println!(
            "held out: drop {:.2} {} on {} against the budget of {} {} met on {} ({})",
            h.drop,
            b.drop_unit,
            a.data.as_ref().map_or(String::new(), |d| d.display().to_string()),
            b.max_drop,
            b.drop_unit,
            tune.display(),
            if h.within_budget { "within it" } else { "over it" }
        );
    }
}

/// The corrections the default kept, with the output error of each configuration tried.
fn corrections_summary(c: &tinyq::choose::CorrectionChoice) -> String {
    let kept = if c.chosen.is_empty() { "none".to_string() } else { c.chosen.join(", ") };
    let tried: Vec<String> = c.scored.iter().map(|(n, e)| format!("{n} {e:.4}")).collect();
    format!("corrections: {kept} (output error on {} calibration samples: {})", c.samples, tried.join(", "))
}

/// The calibration as the summary line says it: the method, or for `auto` what was chosen.
fn calibration_summary(flag: &str, auto: Option<&tinyq::autocal::AutoCalibration>, rows: &[tinyq::RangeRow]) -> String {
    let Some(a) = auto else { return flag.to_string() };
    if a.chosen != "per tensor" {
        return format!("auto: {} for every tensor (closest outputs on {} samples)", a.chosen, a.samples);
    }
    let mut counts: Vec<(String, usize)> = Vec::new();
    for r in rows {
        match counts.iter_mut().find(|(m, _)| *m == r.method) {
            Some(c) => c.1 += 1,
            None => counts.push((r.method.clone(), 1)),
        }
    }
    let list: Vec<String> = counts.iter().map(|(m, n)| format!("{m} ×{n}")).collect();
    format!("auto: per tensor ({}; closest outputs on {} samples)", list.join(", "), a.samples)
}

/// The budget search as a table: plain PTQ, then every step kept with the metric after it.
fn print_budget(r: &tinyq::budget::BudgetReport) {
    let m = r.metric.name();
    let mut rows = vec![vec![
        "0".into(),
        "plain PTQ".into(),
        "–".into(),
        "–".into(),
        format!("{:.4}", r.plain),
        format!("{:.2}", r.plain_drop),
    ]];
    rows.extend(r.steps.iter().enumerate().map(|(k, s)| {
        vec![
            (k + 1).to_string(),
            s.kind.to_string(),
            s.target.clone(),
            s.change.clone(),
            format!("{:.4}", s.metric),
            format!("{:.2}", s.drop),
        ]
    }));
    println!(
        "{}",
        render::table(&["step", "kind", "layer / tensor", "change", m, &format!("drop ({})", r.drop_unit)], rows)
    );
    println!(
        "budget: {m} drop ≤ {} {} on {} samples · FP32 {:.4} · final {:.4} (drop {:.2}) · {} · candidates scored: {} calibration, {} int16, {} float (at most {} per step)",
        r.max_drop,
        r.drop_unit,
        r.eval_samples,
        r.fp32,
        r.final_metric,
        r.final_drop,
        if r.met { "met" } else { "NOT met" },
        r.calibration_candidates,
        r.int16_candidates,
        r.float_candidates,
        r.max_candidates
    );
}
