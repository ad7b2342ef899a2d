//! The HTML report of `tinyq debug`: one self-contained file to open in a browser.
//!
//! The page holds the figures (model names, summary cards, the ranked table of layers with the
//! debugger's suggestions) as HTML and the plots as Vega-Lite specs, built here with
//! `serde_json` and rendered in the page by vega, vega-lite and vega-embed, whose minified builds
//! are compiled into this crate (`assets/`) and inlined. The page fetches nothing: every spec
//! carries its data, no element has a `src` or `href` off the page, and a Content-Security-Policy
//! forbids any fetch, so a report opens the same offline, from an e-mail or an archive.
//!
//! What it is not: a place for numbers. Everything shown comes from the [`DebugReport`] as the
//! facade computed it; this crate only lays it out. User-controlled text (file and tensor names)
//! is escaped for HTML, and the embedded JSON cannot contain `</script>`.
//!
//! The page records script errors, failed plots and Vega warnings in `#report-errors` and sets
//! `data-rendered` on each plot container and on `#report-status` once every plot settled, which
//! is what `tests/oracle/test_html_report.py` reads from a headless browser.

mod specs;
pub mod text;

use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{self, Write as _};
use std::path::Path;

use serde_json::Value;
use tinyq::{DebugReport, LayerDebug, Report};

use text::{bytes, count, db, html, percent, short};

pub const VEGA_VERSION: &str = "6.4.0";
pub const VEGA_LITE_VERSION: &str = "6.5.0";
pub const VEGA_EMBED_VERSION: &str = "7.3.0";

/// The bundled scripts with their licence texts, in load order: (name, version, licence, code).
const SCRIPTS: [(&str, &str, &str, &str); 3] = [
    ("vega", VEGA_VERSION, include_str!("../assets/LICENSE-vega"), include_str!("../assets/vega.min.js")),
    (
        "vega-lite",
        VEGA_LITE_VERSION,
        include_str!("../assets/LICENSE-vega-lite"),
        include_str!("../assets/vega-lite.min.js"),
    ),
    (
        "vega-embed",
        VEGA_EMBED_VERSION,
        include_str!("../assets/LICENSE-vega-embed"),
        include_str!("../assets/vega-embed.min.js"),
    ),
];
const THIRD_PARTY_NOTICES: &str = include_str!("../assets/THIRD-PARTY-NOTICES.txt");

/// The page allows its inline scripts and styles and nothing from anywhere else. Vega evaluates
/// its expressions with its interpreter (`ast: true` in `render.js`), so no `'unsafe-eval'`.
const CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; form-action 'none'; base-uri 'none'";

const STYLE: &str = include_str!("page.css");
/// Runs before the libraries: records errors into the page so a headless browser can read them.
const ERROR_RECORDER: &str = include_str!("record_errors.js");
/// Renders every spec of `#report-specs` into `#plot-N`.
const RENDER: &str = include_str!("render.js");

/// Collects the specs while the HTML is written, so container `plot-N` gets spec `N`.
#[derive(Default)]
struct Plots(Vec<Value>);

impl Plots {
    /// The container of a new plot; `class` sizes it.
    fn add(&mut self, spec: Value, class: &str) -> String {
        let id = self.0.len();
        self.0.push(spec);
        format!(r#"<div class="plot {class}" id="plot-{id}" data-plot="{id}"></div>"#)
    }

    /// The container of a plot, or `note` when there is nothing to draw.
    fn add_or_note(&mut self, spec: Option<Value>, class: &str, note: &str) -> String {
        match spec {
            Some(spec) => self.add(spec, class),
            None => format!(r#"<p class="note">{}</p>"#, html(note)),
        }
    }
}

/// Writes [`debug_page`] to `path` atomically: into a temporary file beside it, renamed over
/// `path` once complete, so `path` is either untouched or the whole report.
pub fn write_debug_page(path: &Path, r: &DebugReport) -> io::Result<()> {
    write_atomic(path, debug_page(r).as_bytes())
}

fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file path"))?;
    let tmp = dir.join(format!(".{}.{}.tmp", name.to_string_lossy(), std::process::id()));
    let result = (|| {
        let mut f = File::options().write(true).create_new(true).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// The whole report as one HTML document.
pub fn debug_page(r: &DebugReport) -> String {
    let mut plots = Plots::default();
    let mut body = String::new();
    header(&mut body, r);
    nav(&mut body, r);

    section(&mut body, "sqnr", "Where the error comes from", None);
    body.push_str(&plots.add(specs::sqnr(&r.layers), "wide"));
    body.push_str("</section>\n");

    section(&mut body, "layers", "Layers, worst first", Some(
        "Ranked by the SQNR the layer has on its own (fed the FP32 model's input, quantized), else by its SQNR in the INT8 model. \
         Errors are in LSB of the layer's INT8 output; “own share” is how much of the tensor's error the layer adds itself (the rest it inherits). \
         Names link to the layer's histogram.",
    ));
    ranking_table(&mut body, r);
    body.push_str("</section>\n");

    section(&mut body, "outputs", "Outputs: FP32 against INT8", Some(
        "What the quantized model changes at its outputs, over every sample. For class outputs, how often the predicted class stays the same; \
         for every output, the error of each value in LSB of the INT8 output.",
    ));
    body.push_str(r#"<div class="grid two">"#);
    for o in &r.outputs {
        if let Some(m) = &o.confusion {
            body.push_str(&plots.add(specs::confusion(o, m, r.samples), "medium"));
        }
        let what = format!("Output {}: no finite FP32 − INT8 value to plot.", o.tensor);
        body.push_str(&plots.add_or_note(specs::output_errors(o), "medium", &what));
    }
    body.push_str("</div>");
    if r.outputs.is_empty() {
        body.push_str(r#"<p class="note">No output of the INT8 model has an FP32 twin of the same size.</p>"#);
    }
    body.push_str("</section>\n");

    section(&mut body, "activations", "Activation histograms", Some(
        "Every FP32 value each layer produced over the samples (log scale), with the INT8 range drawn on it: the dashed red lines are the values q = −128 and q = 127 stand for, \
         and anything in the shaded area beyond them is clipped. Values bunched in a sliver of the range lose resolution (few LSB for the bulk, outliers set the range); \
         a tail beyond the lines is clipped error.",
    ));
    body.push_str(r#"<div class="grid three">"#);
    for (k, l) in r.layers.iter().enumerate() {
        let _ = write!(body, r#"<div class="anchor" id="act-{k}">"#);
        let what = format!("{}. {}: no finite value to plot.", k + 1, l.tensor);
        body.push_str(&plots.add_or_note(specs::activation(k, l), "small", &what));
        body.push_str("</div>");
    }
    body.push_str("</div></section>\n");

    let weighted: Vec<(usize, &LayerDebug)> =
        r.layers.iter().enumerate().filter(|(_, l)| l.weight_ranges.is_some()).collect();
    if !weighted.is_empty() {
        section(&mut body, "weights", "Per-channel weight ranges", Some(
            "The FP32 weights of each output channel, min to max. INT8 weights get one scale per output channel, so each channel uses its own range; \
             channels far narrower than the widest (a large spread) still cost the activations that follow, and matter a lot with per-tensor weights, \
             which would have to cover the dashed range.",
        ));
        body.push_str(r#"<div class="grid three">"#);
        for (k, l) in weighted {
            if let Some(w) = &l.weight_ranges {
                let _ = write!(body, r#"<div class="anchor" id="w-{k}">"#);
                let what = format!("{}. {}: no finite weight to plot.", k + 1, l.tensor);
                body.push_str(&plots.add_or_note(specs::weights(k, l, w), "small", &what));
                body.push_str("</div>");
            }
        }
        body.push_str("</div></section>\n");
    }

    section(&mut body, "footprint", "Footprint of the INT8 model", None);
    match (&r.footprint, &r.footprint_error) {
        (Some(f), _) => {
            footprint(&mut body, f);
            let [macs, arena] = specs::footprint_layers(f);
            body.push_str(r#"<div class="grid two">"#);
            body.push_str(&plots.add(macs, "medium"));
            body.push_str(&plots.add(arena, "medium"));
            body.push_str("</div>");
        }
        (None, e) => {
            let _ =
                write!(body, r#"<p class="note">No footprint: {}</p>"#, html(e.as_deref().unwrap_or("not computed")));
        }
    }
    body.push_str("</section>\n");

    page(r, &body, &plots)
}

fn section(out: &mut String, id: &str, title: &str, how: Option<&str>) {
    let _ = write!(out, r#"<section id="{id}"><h2>{}</h2>"#, html(title));
    if let Some(how) = how {
        let _ = write!(out, r#"<p class="how">{}</p>"#, html(how));
    }
}

fn file_name(path: &str) -> &str {
    path.rsplit(['/', '\\']).next().unwrap_or(path)
}

fn card(out: &mut String, label: &str, value: &str, sub: &str, class: &str) {
    let _ = write!(
        out,
        r#"<div class="card {class}"><div class="label">{}</div><div class="value">{}</div><div class="sub">{}</div></div>"#,
        html(label),
        html(value),
        html(sub)
    );
}

fn header(out: &mut String, r: &DebugReport) {
    let _ = write!(
        out,
        r#"<header><div class="kicker">tinyq debug · quantization report</div><h1>{}</h1><p class="models">FP32 <code title="{}">{}</code> <span class="arrow">→</span> INT8 <code title="{}">{}</code> · {} samples · {} layers compared</p>"#,
        html(file_name(&r.int8_model)),
        html(&r.fp32_model),
        html(&r.fp32_model),
        html(&r.int8_model),
        html(&r.int8_model),
        r.samples,
        r.layers.len()
    );
    out.push_str(r#"<div class="cards">"#);
    let first = r.outputs.first();
    let first_name = first.map_or(String::new(), |o| format!("first output {}", short(&o.tensor, 40)));
    card(out, "Output SQNR", &format!("{} dB", db(r.output_sqnr_db)), &first_name, "");
    if let Some((o, a)) = r.outputs.iter().find_map(|o| Some((o, o.agreement?))) {
        let kept = (a * r.samples as f64).round() as u64;
        card(
            out,
            "Same class",
            &percent(a),
            &format!("{kept} of {} samples keep their class ({})", r.samples, short(&o.tensor, 24)),
            "",
        );
    }
    if let Some(worst) = r.ranking.first().and_then(|name| r.layers.iter().find(|l| &l.tensor == name)) {
        let sub = format!("{} · own SQNR {} dB", worst.op, worst.own_sqnr_db.map_or("–".into(), db));
        card(out, "Worst layer", &short(&worst.tensor, 30), &sub, "name");
    }
    let flagged = r.layers.iter().filter(|l| l.suggestion.is_some()).count();
    let (sub, class) =
        if flagged > 0 { ("with a suggestion in the table", "warn") } else { ("no layer needs a suggestion", "") };
    card(out, "Flagged layers", &flagged.to_string(), sub, class);
    if let Some(f) = &r.footprint {
        card(out, "Flash", &bytes(f.flash_bytes), "the .tflite file", "");
        card(out, "RAM (TFLM arena)", &bytes(f.arena_bytes as u64), &format!("{}-bit pointers", f.pointer_width), "");
        card(out, "MACs", &count(f.macs), &format!("{} parameters", count(f.parameters as u64)), "");
    }
    out.push_str("</div></header>\n");
}

fn nav(out: &mut String, r: &DebugReport) {
    out.push_str(r##"<nav><a href="#sqnr">SQNR</a><a href="#layers">Layers</a><a href="#outputs">Outputs</a><a href="#activations">Activations</a>"##);
    if r.layers.iter().any(|l| l.weight_ranges.is_some()) {
        out.push_str(r##"<a href="#weights">Weights</a>"##);
    }
    out.push_str(r##"<a href="#footprint">Footprint</a></nav>"##);
    out.push('\n');
}

fn ranking_table(out: &mut String, r: &DebugReport) {
    out.push_str(
        r#"<div class="table-wrap"><table class="layers"><thead><tr><th>#</th><th class="name">tensor</th><th>op</th><th class="num">own SQNR dB</th><th class="num">SQNR dB</th><th class="num">own share</th><th class="num">cosine</th><th class="num">max / mean err LSB</th><th class="num">clipped</th><th class="num">w spread</th></tr></thead><tbody>"#,
    );
    for (rank, name) in r.ranking.iter().enumerate() {
        let Some((k, l)) = r.layers.iter().enumerate().find(|(_, l)| &l.tensor == name) else { continue };
        let row_class = if l.suggestion.is_some() { r#" class="flagged""# } else { "" };
        let _ = write!(
            out,
            r##"<tr{row_class}><td class="num">{}</td><td class="name"><a href="#act-{k}" title="{}">{}</a></td><td>{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{:.4}</td><td class="num">{:.1} / {:.2}</td><td class="num">{}</td><td class="num">{}</td></tr>"##,
            rank + 1,
            html(&l.tensor),
            html(&short(&l.tensor, 48)),
            html(&if l.dtype == "int8" { l.op.to_string() } else { format!("{} ({})", l.op, l.dtype) }),
            l.own_sqnr_db.map_or("–".into(), db),
            db(l.sqnr_db),
            l.own_error_share.map_or("–".into(), |s| format!("{:.0} %", s * 100.0)),
            l.cosine,
            l.max_abs_error_lsb,
            l.mean_abs_error_lsb,
            percent(l.clipped_fraction),
            l.weight_spread.map_or("–".into(), |s| format!("{s:.0}×")),
        );
        if let Some(s) = &l.suggestion {
            let _ = write!(out, r#"<tr class="suggestion"><td></td><td colspan="9">→ {}</td></tr>"#, html(s));
        }
    }
    out.push_str("</tbody></table></div>");
}

fn footprint(out: &mut String, f: &Report) {
    out.push_str(r#"<div class="cards">"#);
    let s = &f.flash;
    let split = format!(
        "weights {} · biases {} · quantization parameters {} · names and structure {}",
        bytes(s.weights + s.float_constants),
        bytes(s.biases),
        bytes(s.quantization),
        bytes(s.names + s.structure)
    );
    card(out, "Flash", &bytes(f.flash_bytes), &split, "");
    card(
        out,
        "RAM (TFLM arena)",
        &bytes(f.arena_bytes as u64),
        &format!(
            "head {} + tail {}, {}-bit",
            bytes(f.arena_head_bytes as u64),
            bytes(f.arena_tail_bytes as u64),
            f.pointer_width
        ),
        "",
    );
    card(out, "Parameters", &count(f.parameters as u64), "weights and biases", "");
    card(out, "MACs", &count(f.macs), "per inference", "");
    out.push_str("</div>");
    let mut ops: Vec<(&str, usize)> = Vec::new();
    for l in &f.layers {
        match ops.iter_mut().find(|(op, _)| *op == l.op) {
            Some((_, n)) => *n += 1,
            None => ops.push((l.op, 1)),
        }
    }
    ops.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    out.push_str(r#"<p class="ops"><span class="label">ops</span> "#);
    for (op, n) in ops {
        let _ = write!(out, r#"<span class="chip">{} ×{n}</span>"#, html(op));
    }
    out.push_str("</p>");
}

/// The code of a bundled script without its trailing source-map comment (the map is not bundled).
fn without_source_map(code: &str) -> &str {
    let trimmed = code.trim_end();
    match trimmed.rfind('\n') {
        Some(i) if trimmed[i + 1..].starts_with("//# sourceMappingURL=") => &trimmed[..i],
        _ => trimmed,
    }
}

fn page(r: &DebugReport, body: &str, plots: &Plots) -> String {
    let specs = Value::Array(plots.0.clone());
    let mut out = String::with_capacity(1 << 20);
    let _ = write!(
        out,
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="generator" content="tinyq {version}">
<title>tinyq debug · {title}</title>
<style>
{STYLE}</style>
</head>
<body>
<div id="report-errors" class="errors" hidden><strong>This report did not render completely.</strong><ul></ul></div>
<script>
{ERROR_RECORDER}</script>
<main>
{body}</main>
<footer>Made by tinyq {version} · plots: Vega {VEGA_VERSION}, Vega-Lite {VEGA_LITE_VERSION}, vega-embed {VEGA_EMBED_VERSION} (BSD-3-Clause; their licences and those of the modules they bundle are in comments inside this file) · works offline</footer>
<div id="report-status" hidden data-plots="{n}" data-rendered="0" data-done="false"></div>
<script type="application/json" id="report-specs">{json}</script>
"#,
        csp = CONTENT_SECURITY_POLICY,
        version = env!("CARGO_PKG_VERSION"),
        title = html(file_name(&r.int8_model)),
        n = plots.0.len(),
        json = text::script_json(&specs),
    );
    for (name, version, licence, code) in SCRIPTS {
        let _ = write!(
            out,
            "<script>/*! {name} {version} · BSD-3-Clause\n\n{}\n*/\n{}\n</script>\n",
            comment_safe(licence),
            without_source_map(code)
        );
    }
    let _ = write!(
        out,
        "<script>/*! Bundled inside the scripts above:\n\n{}\n*/\n{RENDER}</script>\n</body>\n</html>\n",
        comment_safe(THIRD_PARTY_NOTICES)
    );
    out
}

/// Licence text that cannot end its `/* */` comment or the script element.
fn comment_safe(s: &str) -> String {
    s.replace("*/", "* /").replace("</", "< /")
}

#[cfg(test)]
mod tests;
