//! The facade's jobs: data from a file and the same arrays in memory give the same file; the
//! request's own checks and the budget refusal come back as typed errors.

use std::path::{Path, PathBuf};

use tinyq::data::{Dataset, LoadOptions};
use tinyq::jobs::{BudgetRequest, DataSource, DataSpec, LabelledData, QuantizeRequest};
use tinyq::{Calibration, QuantizeOptions, TinyqError};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/mnist_dscnn").join(name)
}

fn request(calib: DataSource, eval: Option<DataSource>, max_drop: Option<f64>) -> QuantizeRequest {
    QuantizeRequest {
        calib: DataSpec::new(calib),
        options: QuantizeOptions {
            calibration: Calibration::MinMax,
            per_tensor: false,
            per_tensor_dense: false,
            float_io: false,
            keep_float: Vec::new(),
            int16: Vec::new(),
            bias_correction: false,
            equalize: false,
            choose_corrections: false,
            adaround: false,
            weights: tinyq::WeightBits::Int8,
            kernels: None,
        },
        eval: eval.map(|source| LabelledData { source, x: "x".into(), y: "y".into() }),
        metric: None,
        budget: max_drop.map(|max_drop| BudgetRequest {
            options: tinyq::budget::BudgetOptions {
                max_drop,
                allow_float: false,
                allow_int16: false,
                max_candidates: 2,
            },
            tune: None,
        }),
        output: "out.tflite".into(),
    }
}

#[test]
fn file_and_arrays_give_the_same_file_and_metrics() {
    let model = tinyq::load_model(&fixture("model.onnx")).unwrap();
    let path = fixture("mnist_test_200.npz");
    let file = DataSource::file(&path, LoadOptions::default());
    let ds = Dataset::open(&path, &LoadOptions::default()).unwrap();
    // In memory the calibration array is the only one, so the default key `x_calib` is not there:
    // name it `x`, as the caller of an in-memory dataset would.
    let calib = DataSource::Arrays { name: "calib".into(), arrays: vec![("x".into(), ds.array("x_calib").unwrap())] };
    let eval = DataSource::Arrays {
        name: "eval".into(),
        arrays: vec![("x".into(), ds.array("x").unwrap()), ("y".into(), ds.array("y").unwrap())],
    };
    let a = tinyq::jobs::quantize_job(&model, &request(file.clone(), Some(file), None), &()).unwrap();
    let b = tinyq::jobs::quantize_job(&model, &request(calib, Some(eval), None), &()).unwrap();
    assert_eq!(a.bytes, b.bytes);
    assert_eq!(a.calibration_samples, 100, "x_calib is the default calibration array of the file");
    let (ma, mb) = (a.metrics.as_ref().unwrap(), b.metrics.as_ref().unwrap());
    assert_eq!((ma.fp32.value, ma.int8.value), (mb.fp32.value, mb.int8.value));
    assert_eq!(a.flash.total, a.bytes.len() as u64);
    let written = a.model("out.tflite".into()).unwrap();
    assert_eq!(written.graph.inputs.len(), 1);
}

/// The fixture's inputs labelled with the FP32 model's own outputs (on which FP32 scores an RMSE
/// of exactly 0).
fn own_labels(model: &tinyq::Model, file: &DataSource) -> DataSource {
    let spec = DataSpec { keys: vec!["x".into()], ..DataSpec::new(file.clone()) };
    let fp32 = tinyq::jobs::run_job(model, &spec, &()).unwrap().arrays.remove(0).1;
    let x = Dataset::open(&fixture("mnist_test_200.npz"), &LoadOptions::default()).unwrap().array("x").unwrap();
    DataSource::Arrays { name: "own".into(), arrays: vec![("x".into(), x), ("y".into(), fp32)] }
}

#[test]
fn budget_requests_are_checked_and_refused_with_the_report() {
    let model = tinyq::load_model(&fixture("model.onnx")).unwrap();
    let file = DataSource::file(fixture("mnist_test_200.npz"), LoadOptions::default());
    let e = tinyq::jobs::quantize_job(&model, &request(file.clone(), None, Some(1.0)), &()).unwrap_err();
    assert!(e.to_string().contains("--max-drop needs --data"), "{e}");
    let e = tinyq::jobs::quantize_job(&model, &request(file.clone(), Some(file.clone()), Some(-1.0)), &()).unwrap_err();
    assert!(e.to_string().contains("expected a drop of 0 or more"), "{e}");
    // Labelled with the FP32 model's own outputs, FP32 scores an RMSE of exactly 0: any INT8
    // rounding is an unbounded drop, which no calibration step can bring back to 0.
    let metric_err = {
        let mut req = request(file.clone(), Some(file.clone()), Some(0.0));
        req.metric = Some(tinyq::Metric::Rmse);
        tinyq::jobs::quantize_job(&model, &req, &()).unwrap_err()
    };
    assert!(metric_err.to_string().contains("mnist_test_200.npz: labels `y`: 200 label values"), "{metric_err}");
    let own = own_labels(&model, &file);
    let mut req = request(file, Some(own), Some(0.0));
    req.metric = Some(tinyq::Metric::Rmse);
    match tinyq::jobs::quantize_job(&model, &req, &()) {
        Err(TinyqError::BudgetNotMet { report, allow_float, mixed }) => {
            assert!(!report.met && !allow_float && !mixed && report.fp32 == 0.0 && report.final_drop > 0.0);
            let e = TinyqError::BudgetNotMet { report, allow_float, mixed };
            assert!(e.to_string().contains("the budget cannot be met") && e.to_string().contains("--allow-float"));
        }
        other => panic!("expected the budget refused, got {:?}", other.map(|o| o.budget)),
    }
}

#[test]
fn mixed_weights_refusal_names_what_would_help() {
    let model = tinyq::load_model(&fixture("model.onnx")).unwrap();
    let file = DataSource::file(fixture("mnist_test_200.npz"), LoadOptions::default());
    let mut req = request(file.clone(), Some(file.clone()), Some(1.0));
    req.options.weights = tinyq::WeightBits::Mixed;
    req.budget.as_mut().unwrap().options.allow_float = true;
    let e = tinyq::jobs::quantize_job(&model, &req, &()).unwrap_err();
    assert!(e.to_string().contains("--allow-float does not go with --weights mixed"), "{e}");
    // Labelled with the FP32 model's own outputs, FP32 scores an RMSE of 0: no choice of weights
    // meets a budget of 0, not even int8 in every layer.
    let own = own_labels(&model, &file);
    let mut req = request(file, Some(own), Some(0.0));
    req.options.weights = tinyq::WeightBits::Mixed;
    req.metric = Some(tinyq::Metric::Rmse);
    match tinyq::jobs::quantize_job(&model, &req, &()) {
        Err(TinyqError::BudgetNotMet { report, allow_float, mixed }) => {
            assert!(mixed && !allow_float && !report.met && !report.steps.is_empty());
            let msg = TinyqError::BudgetNotMet { report, allow_float, mixed }.to_string();
            assert!(msg.contains("with int8 weights in every layer"), "{msg}");
            assert!(msg.contains("a larger --max-drop") && msg.contains("--weights int8 with --max-drop"), "{msg}");
            assert!(!msg.contains("try --allow-float"), "{msg}");
        }
        other => panic!("expected the budget refused, got {:?}", other.map(|o| o.budget)),
    }
}
