//! Replays every input the fuzzers ever saved (`fuzz/regressions/<target>/`, crashes and hangs
//! fixed since) and the seed corpora (`fuzz/corpus/<target>/`) through the same entry points the
//! fuzz targets use. Each must end in `Ok` or `Err`; a panic fails the test and names the file.

#[path = "../../../fuzz/harness.rs"]
mod harness;

use std::path::{Path, PathBuf};

fn files(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz").join(kind).join(target);
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file() && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
        .collect();
    out.sort();
    out
}

fn replay(target: &str, run: fn(&[u8])) {
    // The fuzzers run with this tensor limit (fuzz/run.sh); the same here keeps replays fast.
    std::env::set_var("TINYQ_MAX_TENSOR_MB", "64");
    let mut count = 0;
    for kind in ["corpus", "regressions"] {
        for f in files(kind, target) {
            let bytes = std::fs::read(&f).expect("readable input");
            if std::panic::catch_unwind(|| run(&bytes)).is_err() {
                panic!("{} panicked", f.display());
            }
            count += 1;
        }
    }
    assert!(count > 0, "no inputs for {target}");
}

#[test]
fn onnx_inputs_never_panic() {
    replay("onnx", harness::onnx);
}

#[test]
fn tflite_inputs_never_panic() {
    replay("tflite", harness::tflite);
}

#[test]
fn data_inputs_never_panic() {
    replay("data", harness::data);
}

#[test]
fn image_inputs_never_panic() {
    replay("image", harness::image);
}
