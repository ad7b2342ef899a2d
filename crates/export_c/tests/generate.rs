mod common;

use common::*;
use tinyq_export_c::{generate, inspect, resolver_method, ExportError, GeneratedFile};

fn file<'a>(files: &'a [GeneratedFile], name: &str) -> &'a str {
    &files.iter().find(|f| f.path.to_str() == Some(name)).unwrap_or_else(|| panic!("no {name}")).contents
}

fn expected_methods(codes: &[i32]) -> Vec<String> {
    let mut m: Vec<String> = codes.iter().map(|&c| resolver_method(c).expect("known op").to_string()).collect();
    m.sort();
    m
}

#[test]
fn synthetic_model_round_trips() {
    // FULLY_CONNECTED twice (two versions), SOFTMAX, and an unreferenced CONV_2D entry.
    let bytes = model(&[(9, None), (9, None), (25, None), (3, None)], &[0, 1, 2]);
    let files = generate(&bytes, "tiny", 4096).unwrap();
    let names: Vec<_> = files.iter().map(|f| f.path.to_string_lossy().to_string()).collect();
    assert_eq!(
        names,
        [
            "tiny_model_data.h",
            "tiny_model_data.cc",
            "tiny_settings.h",
            "tiny_ops.h",
            "main.cpp",
            "tiny.ino",
            "platformio.ini"
        ]
    );
    for f in &files {
        assert!(f.contents.lines().next().unwrap().contains(tinyq_export_c::GENERATED_MARKER), "{:?}", f.path);
    }
    let cc = file(&files, "tiny_model_data.cc");
    assert_eq!(parse_array(cc), bytes);
    assert!(cc.contains("alignas(16) const unsigned char tiny_model_data[] = {"));
    assert_eq!(constant(cc, "tiny_model_data_len"), bytes.len().to_string());
    assert!(file(&files, "tiny_model_data.h").contains("extern const unsigned int tiny_model_data_len;"));

    let ops = file(&files, "tiny_ops.h");
    assert_eq!(resolver_calls(ops), ["AddFullyConnected", "AddSoftmax"]);
    assert_eq!(constant(ops, "kOpCount"), "2");
    assert!(ops.contains("tflite::MicroMutableOpResolver<kOpCount>"));

    let st = file(&files, "tiny_settings.h");
    assert_eq!(constant(st, "kArenaSize"), "4096");
    assert_eq!(constant(st, "kInputCount"), "1");
    assert_eq!(constant(st, "kInput0Shape[kInput0Dims]"), "{1, 4}");
    assert_eq!(constant(st, "kInput0Elements"), "4");
    assert_eq!(constant(st, "kInput0Type"), "9");
    assert_eq!(constant(st, "kInput0Scale"), "5e-1f");
    assert_eq!(constant(st, "kInput0ZeroPoint"), "-3");
    assert_eq!(constant(st, "kOutput0Scale"), "3.90625e-3f");
    assert_eq!(constant(st, "kOutput0ZeroPoint"), "-128");
    assert_eq!(constant(st, "kOutput0Elements"), "3");

    let info = inspect(&bytes).unwrap();
    assert_eq!(info.operator_codes, [9, 9, 25, 3]);
    assert_eq!(info.used_ops.iter().map(|o| o.code).collect::<Vec<_>>(), [9, 25]);
}

#[test]
fn unsupported_and_custom_ops_are_errors() {
    let topk = model(&[(48, None)], &[0]);
    let e = generate(&topk, "m", 1024).unwrap_err();
    assert!(matches!(&e, ExportError::UnsupportedOp(s) if s.contains("TOPK_V2")), "{e}");
    let custom = model(&[(32, Some("MyOp"))], &[0]);
    let e = generate(&custom, "m", 1024).unwrap_err();
    assert!(matches!(&e, ExportError::CustomOp(s) if s == "MyOp"), "{e}");
    let bad_index = model(&[(9, None)], &[5]);
    assert!(matches!(generate(&bad_index, "m", 1024), Err(ExportError::Malformed(_))));
    // Truncations never panic.
    let good = model(&[(9, None)], &[0]);
    for n in 0..good.len() {
        let _ = generate(&good[..n], "m", 1024);
    }
}

#[test]
fn shared_models_list_exactly_their_ops() {
    let Some(models) = shared_int8_models() else {
        println!("SKIPPED: ../../../shared/models not found");
        return;
    };
    assert!(!models.is_empty());
    for path in &models {
        let bytes = std::fs::read(path).unwrap();
        let files = generate(&bytes, "net", 12345).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(parse_array(file(&files, "net_model_data.cc")), bytes, "{}", path.display());
        let ops = file(&files, "net_ops.h");
        let mut calls = resolver_calls(ops);
        calls.sort();
        let used = used_codes(&bytes);
        assert_eq!(calls, expected_methods(&used), "{}", path.display());
        // Every used op is in the operator-code table; the table may hold more (ic_resnet8's
        // MLPerf model lists QUANTIZE and DEQUANTIZE that no operator uses), which TFLM never
        // looks up, so the resolver leaves them out.
        let table = table_codes(&bytes);
        assert!(used.iter().all(|c| table.contains(c)), "{}", path.display());
        if used != table {
            let extra: Vec<String> =
                table.iter().filter(|c| !used.contains(c)).map(|&c| tinyq_export_c::op_name(c)).collect();
            println!("NOTE: {} lists unused operator codes {extra:?}", path.display());
        }
        assert_eq!(constant(ops, "kOpCount"), used.len().to_string());
        println!("RAN: {} -> {} ops: {}", path.display(), used.len(), calls.join(" "));
    }
}

#[test]
fn kws_mlperf_input_quantization_matches_card() {
    let Some(models) = shared_int8_models() else {
        println!("SKIPPED: ../../../shared/models not found");
        return;
    };
    let Some(kws) = models.iter().find(|p| p.ends_with("kws_dscnn/model_int8_mlperf.tflite")) else {
        println!("SKIPPED: kws_dscnn/model_int8_mlperf.tflite not found");
        return;
    };
    let files = generate(&std::fs::read(kws).unwrap(), "kws", 1000).unwrap();
    let st = file(&files, "kws_settings.h");
    assert_eq!(constant(st, "kInput0ZeroPoint"), "83");
    let scale: f32 = constant(st, "kInput0Scale").trim_end_matches('f').parse().unwrap();
    assert!((scale - 0.584_702_9).abs() < 1e-6, "{scale}");
    assert_eq!(constant(st, "kInput0Shape[kInput0Dims]"), "{1, 49, 10, 1}");
    assert_eq!(constant(st, "kOutput0Elements"), "12");
    println!("RAN: kws settings");
}
