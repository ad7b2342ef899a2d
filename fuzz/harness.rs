#![allow(dead_code)] // each target uses one entry point
//! What each fuzz target does with one input. Shared by the afl binaries in `fuzz/src/bin` and by
//! the regression test that replays `fuzz/regressions` (any `Err` is fine; a panic is a bug).
//!
//! Each input is written to a private temporary folder first, so the fuzzers drive the same
//! path-based loaders as the command line (name sniffing, `.npz` lazy reads, external data).

use std::path::{Path, PathBuf};

/// A private scratch folder, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let base = if Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
        let dir = base.join(format!("tinyq-fuzz-{tag}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch folder");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Largest element count a fuzz input may run with (bigger graphs are only loaded, not run).
const RUN_LIMIT: usize = 1 << 16;

/// Loads a model through the facade (verifier included), summarizes it and, if it is small,
/// builds the matching engine and runs one all-zero sample.
pub fn model(bytes: &[u8], ext: &str) {
    let s = Scratch::new(ext);
    let path = s.0.join(format!("m.{ext}"));
    std::fs::write(&path, bytes).expect("write input");
    let Ok(model) = tinyq::load_model(&path) else { return };
    let _ = tinyq::inspect(&model);
    let g = &model.graph;
    if g.tensors.iter().map(|t| t.numel()).try_fold(0usize, |a, n| a.checked_add(n)).is_none_or(|n| n > RUN_LIMIT) {
        return;
    }
    let float = g.tensors.iter().all(|t| t.is_constant() || t.dtype == tinyq::ir::DType::F32);
    if float {
        if let Ok(plan) = tinyq_float::Plan::new(g) {
            let zeros: Vec<Vec<f32>> = g.inputs.iter().map(|&i| vec![0.0; g.tensor(i).numel()]).collect();
            let args: Vec<&[f32]> = zeros.iter().map(|v| &v[..]).collect();
            let _ = plan.run(&args);
        }
    } else if let Ok(plan) = tinyq_int8::Int8Plan::new(g) {
        use tinyq::ir::DType;
        use tinyq_int8::TensorValue;
        let args: Vec<TensorValue> = g
            .inputs
            .iter()
            .map(|&i| {
                let t = g.tensor(i);
                match t.dtype {
                    DType::I16 => TensorValue::I16(vec![0; t.numel()]),
                    DType::I32 => TensorValue::I32(vec![0; t.numel()]),
                    DType::F32 => TensorValue::F32(vec![0.0; t.numel()]),
                    _ => TensorValue::I8(vec![0; t.numel()]),
                }
            })
            .collect();
        let _ = plan.run(&args);
    }
}

pub fn onnx(bytes: &[u8]) {
    model(bytes, "onnx")
}

pub fn tflite(bytes: &[u8]) {
    model(bytes, "tflite")
}

/// A data file whose format is sniffed from its first bytes (`.npz`, `.npy`, IDX), every array read.
pub fn data(bytes: &[u8]) {
    let s = Scratch::new("data");
    let path = s.0.join("samples");
    std::fs::write(&path, bytes).expect("write input");
    let Ok(ds) = tinyq::data::Dataset::open(&path, &Default::default()) else { return };
    for k in ds.keys() {
        if let Ok(a) = ds.array(&k) {
            let _ = a.to_f32();
        }
    }
}

/// An image folder with one image; the first byte picks the extension, grayscale and resize.
pub fn image(bytes: &[u8]) {
    let Some((&sel, body)) = bytes.split_first() else { return };
    let s = Scratch::new("img");
    let class = s.0.join("c0");
    std::fs::create_dir_all(&class).expect("class folder");
    let ext = ["png", "jpg", "bmp", "jpeg"][(sel & 3) as usize];
    std::fs::write(class.join(format!("a.{ext}")), body).expect("write input");
    let mut opts = tinyq::data::LoadOptions::default();
    opts.image.grayscale = sel & 4 != 0;
    if sel & 8 != 0 {
        opts.image.resize = Some((1 + (sel >> 4) as u32, 3));
    }
    let _ = tinyq::data::Dataset::open(&s.0, &opts);
}
