//! Compares the 64-bit prediction with the smallest arena the `tflite-micro`
//! Python interpreter accepts and invokes with (found by bisection in
//! `tests/tflm_min_arena.py`), for every INT8 model in `../shared/models` and
//! for models tinyq makes from the ONNX ones (two of them also with every layer in int16).
//!
//! Requirement: predicted >= measured and predicted <= measured + max(5%, 256 B).
//! Skips (with a message) when `../shared`, the Python interpreter or the
//! tinyq binary is missing.  Env: `TINYQ_PYTHON`, `TINYQ_BIN`.

use std::path::{Path, PathBuf};
use std::process::Command;

use tinyq_arena::{plan_arena, PointerWidth};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

struct Case {
    name: String,
    path: PathBuf,
}

fn shared_models(shared: &Path) -> Vec<Case> {
    let mut out = Vec::new();
    let Ok(dirs) = std::fs::read_dir(shared.join("models")) else { return out };
    let mut dirs: Vec<_> = dirs.flatten().map(|d| d.path()).filter(|p| p.is_dir()).collect();
    dirs.sort();
    for dir in dirs {
        let Ok(files) = std::fs::read_dir(&dir) else { continue };
        let mut files: Vec<_> = files.flatten().map(|f| f.path()).collect();
        files.sort();
        for f in files {
            let fname = f.file_name().unwrap().to_string_lossy().to_string();
            if fname.starts_with("model_int8_") && fname.ends_with(".tflite") && fname != "model_hybrid_mlperf.tflite" {
                let model = dir.file_name().unwrap().to_string_lossy().to_string();
                out.push(Case { name: format!("{model}/{}", fname.trim_end_matches(".tflite")), path: f });
            }
        }
    }
    out
}

/// Quantizes the ONNX models with the tinyq binary into a temporary directory.
fn tinyq_models(shared: &Path, bin: &Path, out_dir: &Path) -> Vec<Case> {
    // The last two: every layer with an int16 kernel in int16 (two-byte activations).
    let jobs = [
        ("mnist_cnn_torch", "mnist.npz", false),
        ("mnist_dscnn_torch", "mnist.npz", false),
        ("kws_dscnn", "kws01.npz", false),
        ("ic_resnet8", "ic01.npz", false),
        ("hello_world", "sine.npz", false),
        ("kws_dscnn", "kws01.npz", true),
        ("ic_resnet8", "ic01.npz", true),
    ];
    std::fs::create_dir_all(out_dir).unwrap();
    let handles: Vec<_> = jobs
        .iter()
        .map(|&(model, data, int16)| {
            let onnx = shared.join("models").join(model).join("model.onnx");
            let calib = shared.join("data").join(data);
            let name = if int16 { format!("{model}_int16") } else { model.to_string() };
            let out = out_dir.join(format!("{name}.tflite"));
            let bin = bin.to_path_buf();
            std::thread::spawn(move || {
                if !onnx.exists() || !calib.exists() {
                    println!("tinyq/{name}: skipped ({} or {} missing)", onnx.display(), calib.display());
                    return None;
                }
                let mut cmd = Command::new(&bin);
                cmd.arg("quantize").arg(&onnx).arg("--calib").arg(&calib).arg("-o").arg(&out);
                if int16 {
                    cmd.args(["--int16", "all"]);
                }
                let st = cmd.output().expect("running tinyq");
                assert!(st.status.success(), "tinyq quantize {name} failed: {}", String::from_utf8_lossy(&st.stderr));
                Some(Case { name: format!("tinyq/{name}"), path: out })
            })
        })
        .collect();
    handles.into_iter().filter_map(|h| h.join().unwrap()).collect()
}

/// Smallest arena TFLM's Python interpreter creates, allocates and invokes with.
fn measure(python: &Path, model: &Path, hint: usize) -> usize {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tflm_min_arena.py");
    let out = Command::new(python).arg(&script).arg(model).arg(hint.to_string()).output().expect("running python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "bisection failed for {}: {stdout}{}",
        model.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout.lines().find(|l| l.starts_with("min_arena=")).expect("no min_arena line");
    line.split_whitespace().next().unwrap()["min_arena=".len()..].parse().unwrap()
}

#[test]
fn prediction_bounds_tflm_python_interpreter() {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared");
    if !shared.exists() {
        println!("SKIPPED: {} does not exist", shared.display());
        return;
    }
    let python = std::env::var_os("TINYQ_PYTHON").map(PathBuf::from).unwrap_or(repo().join(".venv/bin/python"));
    let has_tflm = Command::new(&python)
        .args(["-c", "from tflite_micro.python.tflite_micro import runtime"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_tflm {
        println!("SKIPPED: {} cannot import tflite_micro (set TINYQ_PYTHON)", python.display());
        return;
    }
    let mut cases = shared_models(&shared);
    let bin = std::env::var_os("TINYQ_BIN").map(PathBuf::from).unwrap_or(repo().join("target/release/tinyq"));
    let tmp = std::env::temp_dir().join(format!("tinyq-arena-test-{}", std::process::id()));
    if bin.exists() {
        cases.extend(tinyq_models(&shared, &bin, &tmp));
    } else {
        println!("tinyq-made models skipped: {} not found (build tinyq-cli or set TINYQ_BIN)", bin.display());
    }
    assert!(!cases.is_empty(), "no INT8 models found under {}", shared.display());
    println!("RAN: comparing {} models with the tflite-micro Python interpreter", cases.len());

    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = cases
            .iter()
            .map(|c| {
                let python = &python;
                s.spawn(move || {
                    let bytes = std::fs::read(&c.path).unwrap();
                    let plan = plan_arena(&bytes, PointerWidth::Bits64).unwrap_or_else(|e| panic!("{}: {e}", c.name));
                    let plan32 = plan_arena(&bytes, PointerWidth::Bits32).unwrap();
                    let measured = measure(python, &c.path, plan.total_bytes * 2);
                    (c.name.clone(), plan.total_bytes, measured, plan32.total_bytes, plan.unknown_ops.clone())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let _ = std::fs::remove_dir_all(&tmp);

    println!("| model | predicted (64-bit) | measured (TFLM Python) | diff | predicted (32-bit MCU) |");
    println!("|---|---:|---:|---:|---:|");
    let mut failures = Vec::new();
    for (name, pred, meas, pred32, unknown) in &results {
        let diff = *pred as i64 - *meas as i64;
        println!("| {name} | {pred} | {meas} | {diff:+} ({:+.2}%) | {pred32} |", 100.0 * diff as f64 / *meas as f64);
        let slack = (meas * 5 / 100).max(256);
        if pred < meas || *pred > meas + slack {
            failures.push(format!("{name}: predicted {pred}, measured {meas} (unknown ops {unknown:?})"));
        }
    }
    assert!(failures.is_empty(), "prediction out of bounds:\n{}", failures.join("\n"));
}
