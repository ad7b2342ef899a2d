//! The Vega-Lite specs of the report, one function per plot. Every spec carries its data inline
//! (`data.values`) and names no URL, so the page renders offline.

use serde_json::{json, Value};
use tinyq::{LayerDebug, OutputDebug, Report, ValueHistogram, WeightRanges};

use crate::text::{db, num, percent, short};

const OWN: &str = "layer alone (its own error)";
const ACCUMULATED: &str = "INT8 model up to this layer";
const BLUE: &str = "#4c78a8";
const LIGHT_BLUE: &str = "#a8c4e0";
const RED: &str = "#c0392b";

/// Width of the full-width plots and of the small multiples, in CSS pixels.
const WIDE: usize = 960;
const SMALL: usize = 320;

fn title(text: &str, subtitle: &[String]) -> Value {
    json!({ "text": text, "subtitle": subtitle, "anchor": "start", "limit": WIDE })
}

fn small_title(text: &str, subtitle: &[String]) -> Value {
    json!({ "text": text, "subtitle": subtitle, "anchor": "start", "limit": SMALL + 40, "subtitleLimit": SMALL + 40 })
}

/// `k. name`, with the name shortened for axis labels.
fn layer_label(k: usize, name: &str, chars: usize) -> String {
    format!("{}. {}", k + 1, short(name, chars))
}

/// Bins with a count, as `{x0, x1, count}` rows (`scale` divides the bin edges).
fn bins(h: &ValueHistogram, scale: f64) -> Vec<Value> {
    h.counts
        .iter()
        .enumerate()
        .filter(|(_, &c)| c > 0)
        .map(|(i, &c)| {
            let x0 = (h.lo + i as f64 * h.bin_width) / scale;
            json!({ "x0": x0, "x1": x0 + h.bin_width / scale, "count": c })
        })
        .collect()
}

/// A count axis on a symlog scale (keeps empty and single-value bins visible next to huge ones),
/// ticked at 0 and the powers of ten, as a log axis would be.
fn count_axis(h: &ValueHistogram) -> Value {
    let top = h.counts.iter().copied().max().unwrap_or(0);
    let mut ticks = vec![0u64];
    let mut t = 1u64;
    while t <= top.max(1) {
        ticks.push(t);
        t = t.saturating_mul(10);
    }
    json!({
        "field": "count", "type": "quantitative", "title": "values (log scale)",
        "scale": { "type": "symlog" },
        "axis": {
            "values": ticks,
            "labelExpr": "datum.value >= 1e6 ? format(datum.value / 1e6, '~g') + 'M' : datum.value >= 1e3 ? format(datum.value / 1e3, '~g') + 'k' : format(datum.value, '~g')"
        }
    })
}

/// SQNR of every layer: the INT8 model's accumulated error and the layer's own, in execution order.
pub fn sqnr(layers: &[LayerDebug]) -> Value {
    let mut rows = Vec::new();
    for (k, l) in layers.iter().enumerate() {
        let label = layer_label(k, &l.tensor, 26);
        if let Some(own) = l.own_sqnr_db {
            rows.push(json!({ "label": label, "tensor": l.tensor, "op": l.op, "series": OWN, "db": own }));
        }
        rows.push(json!({ "label": label, "tensor": l.tensor, "op": l.op, "series": ACCUMULATED, "db": l.sqnr_db }));
    }
    json!({
        "width": WIDE,
        "height": 280,
        "title": title("SQNR per layer", &[
            "Signal-to-quantization-noise ratio of each INT8 tensor against its FP32 twin; higher is better, +6 dB ≈ one more bit.".into(),
            "Bars: the layer alone, fed the FP32 model's input. Line: the whole INT8 model up to this layer. A drop in the line where the bar is low points at the culprit.".into(),
        ]),
        "data": { "values": rows },
        "encoding": {
            "x": {
                "field": "label", "type": "ordinal", "sort": null, "title": "layer (execution order)",
                "axis": { "labelAngle": -40, "labelLimit": 170 }
            },
            "y": { "field": "db", "type": "quantitative", "title": "SQNR (dB)" },
            "color": {
                "field": "series", "type": "nominal", "title": null,
                "scale": { "domain": [OWN, ACCUMULATED], "range": [LIGHT_BLUE, RED] },
                "legend": { "orient": "top", "direction": "horizontal" }
            },
            "tooltip": [
                { "field": "tensor", "title": "tensor" },
                { "field": "op", "title": "op" },
                { "field": "series", "title": "series" },
                { "field": "db", "type": "quantitative", "title": "SQNR (dB)", "format": ".1f" }
            ]
        },
        "layer": [
            { "transform": [{ "filter": { "field": "series", "equal": OWN } }], "mark": { "type": "bar", "width": { "band": 0.7 } } },
            { "transform": [{ "filter": { "field": "series", "equal": ACCUMULATED } }], "mark": { "type": "line", "point": true, "strokeWidth": 2 } }
        ]
    })
}

/// The histogram of a layer's FP32 values with the INT8 range drawn on it (`None` without a
/// finite value to draw).
pub fn activation(k: usize, l: &LayerDebug) -> Option<Value> {
    let h = &l.histogram;
    if h.count == 0 {
        return None;
    }
    let [r0, r1] = l.int8_range;
    let end = h.lo + h.counts.len() as f64 * h.bin_width;
    let (lo, hi) = if h.count > 0 { (h.lo.min(r0), end.max(r1)) } else { (r0, r1) };
    let pad = (hi - lo).abs().max(f64::MIN_POSITIVE) * 0.02;
    let (lo, hi) = (lo - pad, hi + pad);
    let x_scale = json!({ "domain": [lo, hi], "nice": false, "zero": false });
    let mut layers = Vec::new();
    let mut outside = Vec::new();
    if h.count > 0 && h.min < r0 {
        outside.push(json!({ "a": lo, "b": r0 }));
    }
    if h.count > 0 && h.max > r1 {
        outside.push(json!({ "a": r1, "b": hi }));
    }
    if !outside.is_empty() {
        layers.push(json!({
            "data": { "values": outside },
            "mark": { "type": "rect", "color": RED, "opacity": 0.08 },
            "encoding": { "x": { "field": "a", "type": "quantitative", "scale": x_scale }, "x2": { "field": "b" } }
        }));
    }
    layers.push(json!({
        "data": { "values": bins(h, 1.0) },
        "mark": { "type": "bar", "color": BLUE },
        "encoding": {
            "x": { "field": "x0", "type": "quantitative", "title": "FP32 value", "scale": x_scale },
            "x2": { "field": "x1" },
            "y": count_axis(h),
            "y2": { "datum": 0 },
            "tooltip": [
                { "field": "x0", "type": "quantitative", "title": "from", "format": ".4~g" },
                { "field": "x1", "type": "quantitative", "title": "to", "format": ".4~g" },
                { "field": "count", "type": "quantitative", "title": "values", "format": "," }
            ]
        }
    }));
    let ends = json!([
        { "x": r0, "label": "q = −128", "align": "left" },
        { "x": r1, "label": "q = 127", "align": "right" }
    ]);
    layers.push(json!({
        "data": { "values": ends },
        "mark": { "type": "rule", "color": RED, "strokeDash": [5, 3], "strokeWidth": 1.5 },
        "encoding": {
            "x": { "field": "x", "type": "quantitative", "scale": x_scale },
            "tooltip": [{ "field": "label", "title": "INT8 end" }, { "field": "x", "type": "quantitative", "title": "value", "format": ".4~g" }]
        }
    }));
    let clipped = format!("clipped {}", percent(l.clipped_fraction));
    Some(json!({
        "width": SMALL,
        "height": 140,
        "title": small_title(&layer_label(k, &l.tensor, 36), &[
            format!("{} · SQNR {} dB · {clipped}", l.op, db(l.sqnr_db)),
            format!("INT8 range {} … {} (scale {}, zero point {})", num(r0), num(r1), num(l.scale as f64), l.zero_point),
        ]),
        "layer": layers
    }))
}

/// Per-output-channel min and max of a layer's FP32 weights, with the range one per-tensor scale
/// would have to cover.
pub fn weights(k: usize, l: &LayerDebug, w: &WeightRanges) -> Option<Value> {
    let channels = w.min.len();
    let rows: Vec<Value> = w
        .min
        .iter()
        .zip(&w.max)
        .enumerate()
        .filter(|(_, (lo, hi))| lo.is_finite() && hi.is_finite())
        .map(|(c, (&lo, &hi))| json!({ "c": c, "min": lo, "max": hi }))
        .collect();
    if rows.is_empty() {
        return None;
    }
    let m = w.min.iter().chain(&w.max).fold(0f32, |m, &v| if v.is_finite() { m.max(v.abs()) } else { m });
    let stroke = (0.6 * SMALL as f64 / channels.max(1) as f64).clamp(1.0, 8.0);
    let spread = l.weight_spread.map_or("–".to_string(), |s| format!("{s:.0}×"));
    Some(json!({
        "width": SMALL,
        "height": 140,
        "title": small_title(&layer_label(k, &l.tensor, 36), &[
            format!("{} · {channels} output channels · spread {spread}", l.op),
            "each bar: one channel, min … max · dashed: ±max |w|".to_string(),
        ]),
        "layer": [
            {
                "data": { "values": [{ "y": m }, { "y": -m }] },
                "mark": { "type": "rule", "color": "#888888", "strokeDash": [4, 3] },
                "encoding": { "y": { "field": "y", "type": "quantitative" } }
            },
            {
                "data": { "values": rows },
                "mark": { "type": "rule", "color": BLUE, "strokeWidth": stroke },
                "encoding": {
                    "x": {
                        "field": "c", "type": "quantitative", "title": "output channel",
                        "scale": { "domain": [-0.5, channels as f64 - 0.5], "nice": false, "zero": false },
                        "axis": { "format": "d", "tickMinStep": 1 }
                    },
                    "y": { "field": "min", "type": "quantitative", "title": "FP32 weight" },
                    "y2": { "field": "max" },
                    "tooltip": [
                        { "field": "c", "title": "channel" },
                        { "field": "min", "type": "quantitative", "format": ".4~g" },
                        { "field": "max", "type": "quantitative", "format": ".4~g" }
                    ]
                }
            }
        ]
    }))
}

/// Histogram of FP32 − INT8 output values, in LSB of the INT8 output.
pub fn output_errors(o: &OutputDebug) -> Option<Value> {
    let h = &o.error_histogram;
    if h.count == 0 {
        return None;
    }
    let unit = if o.lsb.is_some() { "LSB" } else { "real units" };
    let mut layers = Vec::new();
    if o.lsb.is_some() {
        layers.push(json!({
            "data": { "values": [{ "a": -0.5, "b": 0.5 }] },
            "mark": { "type": "rect", "color": "#f2b447", "opacity": 0.3 },
            "encoding": { "x": { "field": "a", "type": "quantitative" }, "x2": { "field": "b" } }
        }));
    }
    layers.push(json!({
        "data": { "values": bins(h, 1.0) },
        "mark": { "type": "bar", "color": BLUE },
        "encoding": {
            "x": { "field": "x0", "type": "quantitative", "title": format!("FP32 − INT8 ({unit})") },
            "x2": { "field": "x1" },
            "y": count_axis(h),
            "y2": { "datum": 0 },
            "tooltip": [
                { "field": "x0", "type": "quantitative", "title": "from", "format": ".3~g" },
                { "field": "x1", "type": "quantitative", "title": "to", "format": ".3~g" },
                { "field": "count", "type": "quantitative", "title": "values", "format": "," }
            ]
        }
    }));
    let mut subtitle =
        vec![format!("every value of every sample; errors from {} to {} {unit}", num(h.min), num(h.max))];
    if let Some(lsb) = o.lsb {
        subtitle.push(format!("1 LSB = {}; the shaded band is ±½ LSB, what rounding the output alone costs", num(lsb)));
    }
    Some(json!({
        "width": 420,
        "height": 220,
        "title": { "text": format!("Output error · {}", short(&o.tensor, 50)), "subtitle": subtitle, "anchor": "start", "limit": 520 },
        "layer": layers
    }))
}

/// The FP32-argmax × INT8-argmax matrix of a class output.
pub fn confusion(o: &OutputDebug, m: &[Vec<u64>], samples: usize) -> Value {
    let classes = m.len();
    let cell = (420 / classes.max(1)).clamp(8, 40);
    let top = m.iter().flatten().copied().max().unwrap_or(0);
    let mut rows = Vec::with_capacity(classes * classes);
    for (i, row) in m.iter().enumerate() {
        for (j, &c) in row.iter().enumerate() {
            rows.push(
                json!({ "fp32": i, "int8": j, "count": c, "changed": c > 0 && i != j, "dark": 2 * c > top && c > 0 }),
            );
        }
    }
    let agree = o.agreement.map_or("–".to_string(), percent);
    let mut layers = vec![
        json!({
            "mark": { "type": "rect" },
            "encoding": {
                "color": { "field": "count", "type": "quantitative", "title": "samples", "scale": { "type": "symlog", "range": ["#f4f7fa", "#08519c"] } },
                "tooltip": [
                    { "field": "fp32", "title": "FP32 class" },
                    { "field": "int8", "title": "INT8 class" },
                    { "field": "count", "title": "samples" }
                ]
            }
        }),
        json!({
            "transform": [{ "filter": { "field": "changed", "equal": true } }],
            "mark": { "type": "rect", "fillOpacity": 0, "stroke": RED, "strokeWidth": 2 }
        }),
    ];
    if classes <= 20 {
        layers.push(json!({
            "transform": [{ "filter": { "field": "count", "gt": 0 } }],
            "mark": { "type": "text", "fontSize": 11 },
            "encoding": {
                "text": { "field": "count", "type": "quantitative" },
                "color": { "condition": { "test": { "field": "dark", "equal": true }, "value": "white" }, "value": "#222222" }
            }
        }));
    }
    json!({
        "width": cell * classes,
        "height": cell * classes,
        "title": {
            "text": format!("Class agreement · {}", short(&o.tensor, 50)),
            "subtitle": [
                format!("{agree} of {samples} samples get the same class (argmax) from both models"),
                "rows: FP32 class · columns: INT8 class · red frames: samples whose class changes".to_string(),
            ],
            "anchor": "start",
            "limit": 520
        },
        "data": { "values": rows },
        "encoding": {
            "x": { "field": "int8", "type": "ordinal", "title": "INT8 class (argmax)", "axis": { "labelAngle": 0 } },
            "y": { "field": "fp32", "type": "ordinal", "title": "FP32 class (argmax)" }
        },
        "layer": layers
    })
}

/// MACs per layer and the TFLM arena in use while each layer runs.
pub fn footprint_layers(r: &Report) -> [Value; 2] {
    let rows: Vec<Value> = r
        .layers
        .iter()
        .enumerate()
        .map(|(k, l)| {
            json!({
                "label": format!("{}. {}", k + 1, l.op),
                "name": l.name,
                "macs": l.macs,
                "live_kib": l.live_bytes as f64 / 1024.0,
                "weights_kib": l.weight_bytes as f64 / 1024.0
            })
        })
        .collect();
    let x = json!({ "field": "label", "type": "ordinal", "sort": null, "title": "layer (execution order)", "axis": { "labelAngle": -40, "labelLimit": 120 } });
    let tooltip = json!([
        { "field": "name", "title": "layer" },
        { "field": "macs", "type": "quantitative", "title": "MACs", "format": "," },
        { "field": "weights_kib", "type": "quantitative", "title": "weights (KiB)", "format": ".1f" },
        { "field": "live_kib", "type": "quantitative", "title": "arena in use (KiB)", "format": ".1f" }
    ]);
    let plot = |text: &str, sub: String, field: &str, axis: &str, color: &str| {
        json!({
            "width": 420,
            "height": 200,
            "title": { "text": text, "subtitle": [sub], "anchor": "start", "limit": 520 },
            "data": { "values": rows },
            "mark": { "type": "bar", "color": color },
            "encoding": {
                "x": x,
                "y": { "field": field, "type": "quantitative", "title": axis, "axis": { "format": "~s" } },
                "tooltip": tooltip
            }
        })
    };
    [
        plot("Compute per layer", format!("{} MACs in all", crate::text::count(r.macs)), "macs", "MACs", BLUE),
        plot(
            "Arena in use per layer",
            format!(
                "activations live while the layer runs; the arena's peak plus {} of persistent tail",
                crate::text::bytes(r.arena_tail_bytes as u64)
            ),
            "live_kib",
            "KiB",
            "#72b7b2",
        ),
    ]
}
