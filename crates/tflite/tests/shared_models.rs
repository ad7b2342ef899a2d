//! Reads every `.tflite` under the shared model folder (when it exists beside the repo), checks
//! shapes and op counts are sane, and that writing and re-reading keeps the graph.

use std::collections::BTreeMap;
use std::path::PathBuf;
use tinyq_tflite::{read_tflite, read_tflite_file, write_tflite};

fn shared_models() -> Option<Vec<PathBuf>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/models");
    let dirs = std::fs::read_dir(&root).ok()?;
    let mut files: Vec<PathBuf> = dirs
        .flatten()
        .filter_map(|d| std::fs::read_dir(d.path()).ok())
        .flat_map(|d| d.flatten().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "tflite"))
        .collect();
    files.sort();
    Some(files)
}

fn op_counts(g: &tinyq_ir::Graph) -> BTreeMap<&'static str, usize> {
    let mut m = BTreeMap::new();
    for n in &g.nodes {
        *m.entry(n.op.name()).or_default() += 1;
    }
    m
}

#[test]
fn shared_tflite_models_read_and_round_trip() {
    let Some(files) = shared_models() else {
        println!("SKIPPED: no ../shared/models beside the repository");
        return;
    };
    println!("RAN: {} .tflite files under shared/models", files.len());
    assert!(!files.is_empty(), "shared/models exists but holds no .tflite file");
    let mut read_ok = 0;
    for f in &files {
        let name = f.strip_prefix(f.parent().unwrap().parent().unwrap()).unwrap().display().to_string();
        let g = read_tflite_file(f).unwrap_or_else(|e| panic!("{name} should read: {e}"));
        if name.contains("hybrid") {
            // Dynamic-range layers read as float layers: no int8 tensor is left.
            assert!(g.tensors.iter().all(|t| t.dtype == tinyq_ir::DType::F32), "{name}");
        }
        read_ok += 1;
        let counts = op_counts(&g);
        println!("{name}: {} tensors, {} nodes {:?}", g.tensors.len(), g.nodes.len(), counts);
        assert_eq!(g.inputs.len(), 1, "{name}");
        assert_eq!(g.outputs.len(), 1, "{name}");
        let input = &g.tensors[g.inputs[0]];
        let model = name.split('/').next().unwrap();
        let (want_in, want_ops): (&[usize], &[(&str, usize)]) = match model {
            "hello_world" => (&[1, 1], &[("FullyConnected", 3)]),
            "ic_resnet8" => {
                (&[1, 32, 32, 3], &[("Conv2D", 9), ("Add", 3), ("AvgPool2D", 1), ("FullyConnected", 1), ("Softmax", 1)])
            }
            "kws_dscnn" => (
                &[1, 49, 10, 1],
                &[("Conv2D", 5), ("DepthwiseConv2D", 4), ("AvgPool2D", 1), ("FullyConnected", 1), ("Softmax", 1)],
            ),
            _ => (&input.shape[..], &[]),
        };
        assert_eq!(input.shape, want_in, "{name} input shape");
        for &(op, n) in want_ops {
            assert_eq!(counts.get(op).copied().unwrap_or(0), n, "{name}: count of {op}");
        }
        let int8 = name.contains("int8");
        for n in &g.nodes {
            if n.op.has_weights() {
                let w = &g.tensors[n.inputs[1]];
                assert!(w.is_constant(), "{name}: weights of {} are not constant", n.name);
                if int8 {
                    assert_eq!(w.dtype, tinyq_ir::DType::I8, "{name}: {}", n.name);
                    assert!(w.qparams.is_some(), "{name}: {}", n.name);
                }
            }
        }
        let bytes = write_tflite(&g).unwrap_or_else(|e| panic!("{name}: write failed: {e}"));
        let back = read_tflite(&bytes).unwrap_or_else(|e| panic!("{name}: re-read failed: {e}"));
        assert_eq!(back, g, "{name}: write → read changed the graph");
        assert_eq!(write_tflite(&back).unwrap(), bytes, "{name}: output is not deterministic");
    }
    assert_eq!(read_ok, files.len(), "only {read_ok} of {} files read", files.len());
}
