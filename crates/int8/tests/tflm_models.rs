//! Bit-exactness against TFLM on the real INT8 models in `../shared/models` (when that folder
//! exists beside the repository): every `model_int8_*.tflite` runs a slice of its dataset through
//! [`Int8Plan`] and through the `tflite-micro` interpreter (`tflm_run.py`, in the repository's
//! `.venv` or `$TINYQ_PYTHON`), and the int8 outputs must be equal, element for element.
//!
//! Inputs are the dataset's float `x` quantized with the model's input parameters exactly as TFLM's
//! QUANTIZE does, except where `DATASETS.md` gives the raw int8 input: `x_int8` (kws01, for the
//! input quantization it was made with) and `x_uint8 − 128` (ic01, for inputs of scale 1, zp −128).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use tinyq_int8::{Int8Plan, TensorValue};
use tinyq_ir::{DType, Op};
use tinyq_kernels::quantize::{affine_quantize_s8, prepare_affine_quantize_s8};
use tinyq_kernels::QParamsS8;

/// At most this many samples per model, except for tiny inputs (hello_world), which run whole.
const MAX_SAMPLES: usize = 200;
const TINY_INPUT: usize = 16;
/// The input quantization of kws01's `x_int8` (DATASETS.md).
const KWS_X_INT8_QPARAMS: (f32, i32) = (0.584_702_9, 83);

fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn python() -> PathBuf {
    std::env::var_os("TINYQ_PYTHON").map(PathBuf::from).unwrap_or_else(|| manifest().join("../../.venv/bin/python"))
}

struct Case {
    name: String,
    model: PathBuf,
    dataset: PathBuf,
    x_array: String,
}

fn cases(shared: &Path) -> Vec<Case> {
    let mut cases = Vec::new();
    let mut dirs: Vec<PathBuf> =
        std::fs::read_dir(shared.join("models")).unwrap().flatten().map(|e| e.path()).collect();
    dirs.sort();
    for dir in dirs {
        let Ok(card) = std::fs::read_to_string(dir.join("card.json")) else { continue };
        let card: serde_json::Value = serde_json::from_str(&card).unwrap();
        let dataset = &card["dataset"];
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                let name = p.file_name().unwrap().to_string_lossy();
                name.starts_with("model_int8_") && name.ends_with(".tflite") && !name.contains("hybrid")
            })
            .collect();
        files.sort();
        for model in files {
            let file = dataset["file"].as_str().expect("card.json: dataset.file");
            let x_array = dataset["eval_arrays"][0].as_str().expect("card.json: dataset.eval_arrays").to_string();
            let name = model.strip_prefix(shared.join("models")).unwrap().display().to_string();
            cases.push(Case { name, model, dataset: dir.join(file), x_array });
        }
    }
    cases
}

fn read_npz<T: npyz::Deserialize>(path: &Path, key: &str) -> Option<(Vec<usize>, Vec<T>)> {
    let mut npz = npyz::npz::NpzArchive::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let array = npz.by_name(key).unwrap()?;
    let shape = array.shape().iter().map(|&d| d as usize).collect();
    let data = array.into_vec::<T>().unwrap_or_else(|e| panic!("{}: array {key}: {e}", path.display()));
    Some((shape, data))
}

/// The model's int8 inputs for the first `n` samples (at most `max_samples` unless the input is
/// tiny), flat, `per_sample` values each.
fn int8_inputs(case: &Case, q: QParamsS8, per_sample: usize, max_samples: usize) -> (usize, Vec<i8>, &'static str) {
    let int8_key = format!("{}_int8", case.x_array);
    let uint8_key = format!("{}_uint8", case.x_array);
    let qparams = (q.scale, q.zero_point);
    let raw_int8 = (qparams == KWS_X_INT8_QPARAMS).then(|| read_npz::<i8>(&case.dataset, &int8_key)).flatten();
    let raw_uint8 = (qparams == (1.0, -128)).then(|| read_npz::<u8>(&case.dataset, &uint8_key)).flatten();
    let (raw, how): (Vec<i8>, &'static str) = if let Some((_, v)) = raw_int8 {
        (v, "x_int8")
    } else if let Some((_, v)) = raw_uint8 {
        (v.iter().map(|&p| (p as i16 - 128) as i8).collect(), "x_uint8 - 128")
    } else {
        let (_, x) = read_npz::<f32>(&case.dataset, &case.x_array).expect("the eval input array");
        let params = prepare_affine_quantize_s8(q).unwrap();
        let mut out = vec![0i8; x.len()];
        affine_quantize_s8(&params, &x, &mut out);
        (out, "x quantized")
    };
    assert_eq!(raw.len() % per_sample, 0, "{}: dataset does not fit input size {per_sample}", case.name);
    let cap = if per_sample <= TINY_INPUT { usize::MAX } else { max_samples };
    let n = (raw.len() / per_sample).min(cap);
    (n, raw[..n * per_sample].to_vec(), how)
}

fn write_npy_i8(path: &Path, shape: &[usize], data: &[i8]) {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape = if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let mut header = format!("{{'descr': '|i1', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(b"\x93NUMPY\x01\x00").unwrap();
    f.write_all(&(header.len() as u16).to_le_bytes()).unwrap();
    f.write_all(header.as_bytes()).unwrap();
    f.write_all(&data.iter().map(|&v| v as u8).collect::<Vec<_>>()).unwrap();
}

fn run_plan_parallel(plan: &Int8Plan, inputs: &[i8], per_sample: usize) -> Vec<i8> {
    let samples: Vec<&[i8]> = inputs.chunks(per_sample).collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(samples.len().max(1));
    let chunk = samples.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = samples
            .chunks(chunk)
            .map(|part| {
                s.spawn(move || {
                    part.iter()
                        .flat_map(|x| {
                            let out = plan.run(&[TensorValue::I8(x.to_vec())]).expect("inputs checked");
                            out[0].as_i8().expect("int8 output").to_vec()
                        })
                        .collect::<Vec<i8>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    })
}

/// The shared folder's INT8 models and the Python that runs TFLM, or `None` (printed) when the
/// shared folder is absent.
fn setup(what: &str) -> Option<(Vec<Case>, PathBuf, PathBuf)> {
    let shared = manifest().join("../../../shared");
    if !shared.join("models").is_dir() {
        println!("SKIPPED: no ../shared/models beside the repository");
        return None;
    }
    let python = python();
    assert!(
        python.exists(),
        "the TFLM oracle needs Python with tflite-micro: {} is missing (create the repo's .venv or set TINYQ_PYTHON)",
        python.display()
    );
    let cases = cases(&shared);
    assert!(!cases.is_empty(), "shared/models holds no model_int8_*.tflite");
    println!("RAN: {} INT8 models against TFLM, {what} ({})", cases.len(), python.display());
    let tmp = std::env::temp_dir().join(format!("tinyq-int8-{what}-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    Some((cases, python, tmp))
}

/// Reads and prepares the model, and builds the int8 inputs of its first samples.
fn load(case: &Case, max_samples: usize) -> (Int8Plan, usize, Vec<i8>, &'static str) {
    let graph = tinyq_tflite::read_tflite_file(&case.model).unwrap_or_else(|e| panic!("{}: {e}", case.name));
    let plan = Int8Plan::new(&graph).unwrap_or_else(|e| panic!("{}: {e}", case.name));
    assert_eq!(graph.inputs.len(), 1, "{}", case.name);
    let input = &graph.tensors[graph.inputs[0]];
    assert_eq!(input.dtype, DType::I8, "{}: the input is not int8", case.name);
    let q = input.qparams.as_ref().expect("quantized input");
    let (n, inputs, how) = int8_inputs(case, QParamsS8::new(q.scale[0], q.zero_point[0]), input.numel(), max_samples);
    (plan, n, inputs, how)
}

/// Writes `n` samples as `[n, input shape…]`; returns the elements per sample.
fn write_inputs(plan: &Int8Plan, path: &Path, n: usize, inputs: &[i8]) -> usize {
    let g = plan.graph();
    let input = &g.tensors[g.inputs[0]];
    let mut shape = vec![n];
    shape.extend(&input.shape);
    write_npy_i8(path, &shape, inputs);
    input.numel()
}

fn tflm(python: &Path, args: &[&std::ffi::OsStr]) -> std::process::Child {
    Command::new(python)
        .arg(manifest().join("tests/tflm_run.py"))
        .args(args)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", python.display()))
}

#[test]
fn int8_models_match_tflm_bit_for_bit() {
    let Some((cases, python, tmp)) = setup("outputs") else { return };

    struct Pending {
        plan: Int8Plan,
        inputs: Vec<i8>,
        per_sample: usize,
        n: usize,
        how: &'static str,
        output: PathBuf,
        child: std::process::Child,
    }
    let mut pending = Vec::new();
    for (k, case) in cases.iter().enumerate() {
        let (plan, n, inputs, how) = load(case, MAX_SAMPLES);
        let input_path = tmp.join(format!("{k}_in.npy"));
        let output = tmp.join(format!("{k}_out.npy"));
        let per_sample = write_inputs(&plan, &input_path, n, &inputs);
        let child = tflm(&python, &[case.model.as_ref(), input_path.as_ref(), output.as_ref()]);
        pending.push(Pending { plan, per_sample, inputs, n, how, output, child });
    }

    let mut failures = Vec::new();
    for (case, mut p) in cases.iter().zip(pending) {
        let ours = run_plan_parallel(&p.plan, &p.inputs, p.per_sample);
        let status = p.child.wait().unwrap();
        assert!(status.success(), "{}: tflm_run.py failed ({status})", case.name);
        let file = std::fs::File::open(&p.output).unwrap();
        let tflm = npyz::NpyFile::new(std::io::BufReader::new(file)).unwrap().into_vec::<i8>().unwrap();
        assert_eq!(ours.len(), tflm.len(), "{}: output sizes differ", case.name);
        let mismatches = ours.iter().zip(&tflm).filter(|(a, b)| a != b).count();
        println!(
            "{:<40} {:>5} samples ({}), {:>6} output elements, {} mismatches",
            case.name,
            p.n,
            p.how,
            ours.len(),
            mismatches
        );
        if mismatches > 0 {
            let per = ours.len() / p.n;
            let first = (0..p.n).find(|&i| ours[i * per..(i + 1) * per] != tflm[i * per..(i + 1) * per]).unwrap();
            failures.push((case.name.clone(), mismatches, first, ours, tflm, per));
        }
    }
    std::fs::remove_dir_all(&tmp).ok();
    for (name, mismatches, i, ours, tflm, per) in &failures {
        assert_eq!(
            ours[i * per..(i + 1) * per],
            tflm[i * per..(i + 1) * per],
            "{name}: {mismatches} mismatching elements; first differing sample is {i}"
        );
    }
}

/// A float model runs up to the first node without a float kernel (conv, depthwise conv, fully
/// connected, reshape, transpose and pad have one, for layers a quantized model keeps in float),
/// and is refused there, naming it.
#[test]
fn float_models_are_refused_naming_the_first_node_without_a_float_kernel() {
    let models = manifest().join("../../../shared/models");
    let path = models.join("kws_dscnn/model_fp32.tflite");
    if !path.exists() {
        println!("SKIPPED: no {}", path.display());
        return;
    }
    println!("RAN: {}", path.display());
    let graph = tinyq_tflite::read_tflite_file(&path).unwrap();
    let msg = Int8Plan::new(&graph).err().expect("a float graph is refused").to_string();
    let first = graph
        .nodes
        .iter()
        .find(|n| {
            !matches!(
                n.op,
                Op::Conv2D(_)
                    | Op::DepthwiseConv2D(_)
                    | Op::FullyConnected(_)
                    | Op::Reshape
                    | Op::Transpose(_)
                    | Op::Pad(_)
            )
        })
        .expect("the model has a pool");
    assert!(msg.starts_with(&format!("node `{}` ({}): ", first.name, first.op.name())), "{msg}");
    assert!(msg.contains("float32, expected int8"), "{msg}");
}

/// Every int8 tensor of a run, matched to TFLM's by name (kPreserveAllTensors), on a few samples.
#[test]
fn every_int8_tensor_matches_tflm_layer_by_layer() {
    const SAMPLES: usize = 2;
    let Some((cases, python, tmp)) = setup("layers") else { return };
    let mut jobs = Vec::new();
    for (k, case) in cases.iter().enumerate() {
        let (plan, _, inputs, _) = load(case, SAMPLES);
        let per_sample = plan.graph().tensors[plan.graph().inputs[0]].numel();
        let n = SAMPLES.min(inputs.len() / per_sample);
        let inputs = inputs[..n * per_sample].to_vec();
        let input_path = tmp.join(format!("{k}_in.npy"));
        let dir = tmp.join(format!("{k}_tensors"));
        write_inputs(&plan, &input_path, n, &inputs);
        let child = tflm(&python, &["--all-tensors".as_ref(), case.model.as_ref(), input_path.as_ref(), dir.as_ref()]);
        jobs.push((plan, inputs, per_sample, n, dir, child));
    }
    let mut failures = Vec::new();
    for (case, (plan, inputs, per_sample, n, dir, mut child)) in cases.iter().zip(jobs) {
        let status = child.wait().unwrap();
        assert!(status.success(), "{}: tflm_run.py --all-tensors failed ({status})", case.name);
        let names = std::fs::read_to_string(dir.join("names.txt")).unwrap();
        let mut index = std::collections::HashMap::new();
        for (i, name) in names.lines().enumerate() {
            index.entry(name.to_string()).or_insert(Vec::new()).push(i);
        }
        let (mut compared, mut mismatches) = (0, 0);
        for (s, x) in inputs.chunks(per_sample).enumerate().take(n) {
            let mut observed = Vec::new();
            plan.run_observed(&[TensorValue::I8(x.to_vec())], &mut |t, v| observed.push((t, v.clone()))).unwrap();
            for (t, value) in observed {
                let Some(ours) = value.as_i8() else { continue };
                let name = &plan.graph().tensors[t].name;
                let [i] = index.get(name).map(Vec::as_slice).unwrap_or_default() else {
                    panic!("{}: tensor `{name}` is not exactly once in the file", case.name)
                };
                let file = std::fs::File::open(dir.join(format!("s{s}_t{i}.npy")))
                    .unwrap_or_else(|e| panic!("{}: TFLM did not dump `{name}`: {e}", case.name));
                let theirs = npyz::NpyFile::new(std::io::BufReader::new(file)).unwrap().into_vec::<i8>().unwrap();
                compared += 1;
                let bad = ours.iter().zip(&theirs).filter(|(a, b)| a != b).count();
                mismatches += bad;
                if (bad > 0 || ours.len() != theirs.len()) && failures.len() < 4 {
                    failures.push((format!("{} sample {s} tensor `{name}`", case.name), ours.to_vec(), theirs));
                }
            }
        }
        println!("{:<40} {n} samples, {compared} int8 tensors compared, {mismatches} mismatching elements", case.name);
        assert!(compared > n, "{}: no intermediate tensor was compared", case.name);
    }
    std::fs::remove_dir_all(&tmp).ok();
    for (what, ours, theirs) in &failures {
        assert_eq!(ours, theirs, "{what}");
    }
}

/// The engine's other ways to run give the same bytes as one sample at a time on the fast
/// kernels: batches of several sizes (`run_batch`), the portable fast path and the reference
/// kernels.
#[test]
fn batches_and_kernel_choices_give_the_same_bytes() {
    let shared = manifest().join("../../../shared");
    if !shared.join("models").is_dir() {
        return println!("SKIPPED: no ../shared/models beside the repository");
    }
    let cases = cases(&shared);
    assert!(!cases.is_empty(), "shared/models holds no model_int8_*.tflite");
    for case in &cases {
        let (plan, n, inputs, _) = load(case, 37);
        let per_sample = inputs.len() / n;
        let single = run_plan_parallel(&plan, &inputs, per_sample);
        for batch in [1, 5, 16, n] {
            let batched: Vec<i8> = inputs
                .chunks(batch * per_sample)
                .flat_map(|part| {
                    let out = plan.run_batch(&[TensorValue::I8(part.to_vec())], part.len() / per_sample).unwrap();
                    out[0].as_i8().unwrap().to_vec()
                })
                .collect();
            assert_eq!(batched, single, "{}: batches of {batch} differ from single runs", case.name);
        }
        for kernels in [tinyq_int8::Kernels::Avx2, tinyq_int8::Kernels::Portable, tinyq_int8::Kernels::Reference] {
            let other = Int8Plan::with_kernels(plan.graph(), kernels).unwrap();
            let out = other.run_batch(&[TensorValue::I8(inputs.clone())], n).unwrap();
            assert_eq!(out[0].as_i8().unwrap(), single, "{}: {kernels:?} kernels differ", case.name);
        }
    }
}
