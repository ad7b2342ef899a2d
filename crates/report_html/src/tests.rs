use serde_json::Value;
use tinyq::{DebugReport, LayerDebug, LayerFootprint, OutputDebug, Report, ValueHistogram, WeightRanges};

use super::*;

const HOSTILE: &str = r#"conv</script><script>alert("x")</script><!--&amp;'"#;

fn histogram(lo: f64, width: f64, counts: Vec<u64>) -> ValueHistogram {
    let count = counts.iter().sum();
    let max = lo + counts.len() as f64 * width - width / 2.0;
    ValueHistogram { lo, bin_width: width, counts, min: lo + width / 2.0, max, count, nonfinite: 0 }
}

fn layer(name: &str, op: &'static str, weights: bool) -> LayerDebug {
    LayerDebug {
        tensor: name.to_string(),
        op,
        dtype: "int8",
        sqnr_db: 31.5,
        cosine: 0.9996,
        max_abs_error_lsb: 3.0,
        mean_abs_error_lsb: 0.4,
        clipped_fraction: 0.002,
        mean_abs_value_lsb: 20.0,
        weight_spread: weights.then_some(12.0),
        own_sqnr_db: Some(38.0),
        own_error_share: Some(0.4),
        suggestion: weights.then(|| "try --calibration percentile".to_string()),
        scale: 0.05,
        zero_point: -10,
        int8_range: [-5.9, 6.85],
        histogram: histogram(-6.4, 0.1, (0..128).map(|i| (i % 7) as u64).collect()),
        weight_ranges: weights.then(|| WeightRanges {
            axis: 0,
            min: vec![-0.5, -0.1, -0.2],
            max: vec![0.4, 0.12, 0.3],
        }),
    }
}

/// Three layers (one with a hostile name), a class output and a regression output, a footprint.
fn report() -> DebugReport {
    let layers = vec![
        layer(HOSTILE, "Conv2D", true),
        layer("pool", "AveragePool2D", false),
        layer("logits", "FullyConnected", true),
    ];
    let class = OutputDebug {
        tensor: "logits".into(),
        elements: 3,
        lsb: Some(0.1),
        error_histogram: histogram(-1.0, 0.125, vec![1, 4, 30, 60, 30, 4, 1, 0, 2]),
        confusion: Some(vec![vec![10, 1, 0], vec![0, 12, 0], vec![2, 0, 9]]),
        agreement: Some(31.0 / 34.0),
    };
    let regression = OutputDebug {
        tensor: "y".into(),
        elements: 1,
        lsb: None,
        error_histogram: histogram(-0.02, 0.005, vec![3, 9, 20, 9, 3]),
        confusion: None,
        agreement: None,
    };
    let fl = |name: &str, op: &'static str| LayerFootprint {
        name: name.into(),
        op,
        output_shape: vec![1, 8],
        macs: 1200,
        weight_bytes: 300,
        activation_bytes: 8,
        live_bytes: 2048,
        unpack_scratch_bytes: 0,
    };
    DebugReport {
        findings: vec![],
        samples: 34,
        ranking: vec![HOSTILE.into(), "logits".into(), "pool".into()],
        layers,
        output_sqnr_db: 24.0,
        fp32_model: "models/<b>fp32</b>.onnx".into(),
        int8_model: "models/int8 & co.tflite".into(),
        outputs: vec![class, regression],
        footprint: Some(Report {
            model: "models/int8 & co.tflite".into(),
            pointer_width: 32,
            kernels: "reference",
            tflm_build: "firmware",
            measured: None,
            int4: None,
            flash_bytes: 4096,
            flash: tinyq::tflite::FlashBreakdown {
                total: 4096,
                weights: 2000,
                biases: 400,
                quantization: 700,
                names: 300,
                structure: 696,
                ..Default::default()
            },
            arena_bytes: 3000,
            arena_head_bytes: 2048,
            arena_tail_bytes: 952,
            parameters: 900,
            macs: 3600,
            layers: vec![fl(HOSTILE, "Conv2D"), fl("pool", "AveragePool2D"), fl("logits", "FullyConnected")],
        }),
        footprint_error: None,
    }
}

/// The page with the bundled libraries and licence comments cut out: what tinyq itself wrote.
fn own_markup(page: &str) -> String {
    let mut s = page.to_string();
    for (_, _, licence, code) in SCRIPTS {
        s = s.replace(without_source_map(code), "").replace(&comment_safe(licence), "");
    }
    s.replace(&comment_safe(THIRD_PARTY_NOTICES), "")
}

fn specs_of(page: &str) -> Vec<Value> {
    let open = r#"<script type="application/json" id="report-specs">"#;
    let start = page.find(open).expect("the specs element") + open.len();
    let end = start + page[start..].find("</script>").expect("the specs element ends");
    match serde_json::from_str(&page[start..end]).expect("the specs are JSON") {
        Value::Array(v) => v,
        other => panic!("specs are not an array: {other}"),
    }
}

fn keys(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => m.iter().for_each(|(k, v)| {
            out.push(k.clone());
            keys(v, out);
        }),
        Value::Array(a) => a.iter().for_each(|v| keys(v, out)),
        _ => {}
    }
}

fn string_values(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Object(m) => m.values().for_each(|v| string_values(v, out)),
        Value::Array(a) => a.iter().for_each(|v| string_values(v, out)),
        _ => {}
    }
}

#[test]
fn user_text_is_escaped_and_cannot_open_or_close_a_script() {
    let page = debug_page(&report());
    assert!(!page.contains("<script>alert"), "a tensor name became markup");
    assert!(!page.contains("<b>fp32</b>"), "a file name became markup");
    assert!(page.contains("conv&lt;/script&gt;&lt;script&gt;alert(&quot;x&quot;)"));
    assert!(page.contains("int8 &amp; co.tflite"));
    // Every `</script>` closes one of the page's own script elements.
    assert_eq!(page.matches("<script").count(), page.matches("</script>").count());
    assert_eq!(page.matches("<script").count(), 1 + 1 + SCRIPTS.len() + 1);
    // The hostile name still reaches the plots, intact, as data.
    let specs = specs_of(&page);
    let mut strings = Vec::new();
    specs.iter().for_each(|s| string_values(s, &mut strings));
    assert!(strings.iter().any(|s| s == HOSTILE));
}

#[test]
fn there_is_one_valid_spec_per_plot_container_and_every_spec_carries_its_data() {
    let r = report();
    let page = debug_page(&r);
    let specs = specs_of(&page);
    // SQNR, 2 outputs (confusion + errors, errors), 3 histograms, 2 weight plots, 2 footprint plots.
    assert_eq!(specs.len(), 1 + 3 + 3 + 2 + 2);
    assert_eq!(page.matches(r#"<div class="plot "#).count(), specs.len());
    assert!(page.contains(&format!(r#"data-plots="{}""#, specs.len())));
    for (i, spec) in specs.iter().enumerate() {
        assert!(page.contains(&format!(r#"id="plot-{i}""#)), "no container for spec {i}");
        assert!(spec.get("mark").is_some() || spec.get("layer").is_some(), "spec {i} draws nothing: {spec}");
        assert!(spec["title"]["text"].as_str().is_some_and(|t| !t.is_empty()), "spec {i} has no title");
        let mut k = Vec::new();
        keys(spec, &mut k);
        assert!(!k.iter().any(|k| k == "url" || k == "$schema"), "spec {i} points somewhere: {spec}");
        assert!(k.iter().any(|k| k == "values"), "spec {i} has no inline data");
        assert!(k.iter().filter(|k| *k == "title").count() >= 2, "spec {i} lacks axis titles: {spec}");
    }
}

#[test]
fn the_page_loads_nothing_from_anywhere() {
    let page = debug_page(&report());
    let own = own_markup(&page);
    for needle in ["http://", "https://", "src=", "<link", "@import", "url(", "@font-face", "//cdn"] {
        assert!(!own.contains(needle), "the page's own markup contains {needle:?}");
    }
    assert!(
        page.contains(&format!(r#"<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">"#))
    );
    assert!(CONTENT_SECURITY_POLICY.starts_with("default-src 'none';") && !CONTENT_SECURITY_POLICY.contains("http"));
    // Nothing about the bundles was left out of the check: the cut removed them whole.
    assert!(own.len() < page.len() / 4, "{} of {}", own.len(), page.len());
}

#[test]
fn the_plotting_scripts_and_their_licences_are_in_the_page() {
    let page = debug_page(&report());
    for (name, version, licence, code) in SCRIPTS {
        let body = without_source_map(code);
        assert!(body.len() > 10_000 && page.contains(body), "{name} is not inlined");
        assert!(!body.contains("sourceMappingURL"), "{name} keeps its source-map comment");
        assert!(!body.contains("</script"), "{name} would end its script element early");
        assert!(page.contains(&format!("/*! {name} {version} · BSD-3-Clause")));
        assert!(
            licence.contains("Redistribution and use in source and binary forms")
                && page.contains(&comment_safe(licence))
        );
    }
    assert!(page.contains("vegaEmbed(el, spec"));
    assert!(page.contains(r#"renderer: "svg""#));
    assert!(THIRD_PARTY_NOTICES.contains("d3-array") && page.contains(&comment_safe(THIRD_PARTY_NOTICES)));
    assert!(
        page.contains(VEGA_LITE_VERSION)
            && include_str!("../assets/vega-lite.min.js").contains(&format!("\"{VEGA_LITE_VERSION}\""))
    );
}

#[test]
fn the_table_ranks_layers_and_shows_suggestions() {
    let page = debug_page(&report());
    let table = &page[page.find(r#"<table class="layers">"#).unwrap()..page.find("</table>").unwrap()];
    let first = table.find("conv&lt;/script").unwrap();
    let (logits, pool) = (table.find(">logits<").unwrap(), table.find(">pool<").unwrap());
    assert!(first < logits && logits < pool, "not in ranking order");
    assert_eq!(table.matches(r#"class="flagged""#).count(), 2);
    assert_eq!(table.matches("→ try --calibration percentile").count(), 2);
}

#[test]
fn the_flash_card_splits_the_file() {
    let page = debug_page(&report());
    let split = "weights 2.0 KiB · biases 400 B · quantization parameters 700 B · names and structure 996 B";
    assert!(page.contains(split), "no flash split in the page");
}

#[test]
fn a_missing_footprint_is_explained_and_the_page_is_deterministic() {
    let mut r = report();
    r.footprint = None;
    r.footprint_error = Some("model.onnx: the report is about a .tflite file".into());
    let page = debug_page(&r);
    assert!(page.contains("No footprint: model.onnx: the report is about a .tflite file"));
    assert_eq!(specs_of(&page).len(), 1 + 3 + 3 + 2);
    assert_eq!(page, debug_page(&r));
}

#[test]
fn plots_without_data_become_notes() {
    let mut r = report();
    r.layers[1].histogram = histogram(0.0, 1.0, vec![]);
    r.layers[2].weight_ranges = Some(WeightRanges { axis: 0, min: vec![f32::INFINITY], max: vec![f32::NEG_INFINITY] });
    r.outputs[1].error_histogram = histogram(0.0, 1.0, vec![]);
    let page = debug_page(&r);
    assert_eq!(specs_of(&page).len(), 1 + 3 + 3 + 2 + 2 - 3);
    assert!(page.contains("2. pool: no finite value to plot."));
    assert!(page.contains("3. logits: no finite weight to plot."));
    assert!(page.contains("Output y: no finite FP32 − INT8 value to plot."));
}

#[test]
fn the_report_is_written_whole_or_not_at_all() {
    let dir = std::env::temp_dir().join(format!("tinyq-html-test-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let path = dir.join("report.html");
    write_debug_page(&path, &report()).unwrap();
    assert_eq!(fs::read_to_string(&path).unwrap(), debug_page(&report()));
    let missing = dir.join("no-such-folder").join("report.html");
    assert!(write_debug_page(&missing, &report()).is_err());
    let left: Vec<_> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, vec![std::ffi::OsString::from("report.html")], "a temporary file was left behind");
    fs::remove_dir_all(&dir).unwrap();
}
