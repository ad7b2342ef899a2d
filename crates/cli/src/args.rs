use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// tinyq: squeeze trained networks into microcontrollers.
#[derive(Parser)]
#[command(name = "tinyq", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Fix a model input's dynamic axes, e.g. `--input-shape x=1,3,224,224` (repeat for several
    /// inputs): ONNX `dim_param`s and TFLite `-1`s; shapes are inferred through the graph again.
    #[arg(long = "input-shape", global = true, value_name = "NAME=D0,D1,…")]
    pub input_shape: Vec<String>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Inputs, outputs, op counts, parameters, MACs and tensor shapes of a model.
    Inspect {
        model: PathBuf,
        /// Print one JSON object instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Run every sample through the model and write the raw outputs (`y`, `y_1`, …) to an .npz.
    Run {
        model: PathBuf,
        #[command(flatten)]
        data: DataArgs,
        /// Output .npz file.
        #[arg(short, long)]
        output: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Compute a metric of the model on a labelled dataset.
    Eval {
        model: PathBuf,
        #[command(flatten)]
        data: DataArgs,
        /// Array holding the labels.
        #[arg(long = "y", default_value = "y")]
        y: String,
        /// top1, rmse or auc (default: top1 for class labels, rmse otherwise).
        #[arg(long)]
        metric: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Post-training quantization to a fully-integer INT8 .tflite, calibrated on real data.
    Quantize(QuantizeArgs),
    /// Quantization-aware training: fine-tune with INT8 rounding simulated (with labels, or
    /// label-free by distillation from the FP32 model) and export the INT8 .tflite.
    Train(crate::train::TrainArgs),
    /// Flash, TFLM arena (RAM), parameters, MACs and a per-layer table of a .tflite model; checks
    /// the fit on a board or against budgets (non-zero exit when it does not fit).
    Report {
        /// The model (.tflite).
        model: Option<PathBuf>,
        /// 32 for microcontrollers, 64 for the `tflite-micro` interpreter on a 64-bit host.
        #[arg(long, default_value_t = 32)]
        pointer_width: usize,
        /// Check the fit on a board (`--list-devices` names them).
        #[arg(long)]
        device: Option<String>,
        /// RAM budget for the arena, e.g. 64KiB.
        #[arg(long)]
        ram_budget: Option<String>,
        /// Flash budget for the model, e.g. 512KiB.
        #[arg(long)]
        flash_budget: Option<String>,
        /// List the built-in boards.
        #[arg(long)]
        list_devices: bool,
        /// TFLM kernels the arena is predicted for: reference or cmsis-nn (32-bit only).
        #[arg(long, default_value = "reference")]
        kernels: String,
        /// The TFLM build that loads the model: `python` (the tflite-micro package's
        /// interpreter; the default at 64 bits) or `firmware` (TFLM compiled into a program; the
        /// default at 32 bits).
        #[arg(long)]
        tflm_build: Option<String>,
        #[arg(long)]
        json: bool,
        /// The interpreter-free C instead (`export --no-interpreter`): its planned arena and
        /// constants, and the RAM, stack and flash `verify --no-interpreter` measured.
        #[arg(long)]
        no_interpreter: bool,
    },
    /// C sources for TensorFlow Lite Micro: model data, op resolver, settings with the exact
    /// arena size, a main.cpp, an Arduino sketch and a platformio.ini.
    Export {
        /// The model (.tflite).
        model: PathBuf,
        /// Output folder.
        #[arg(long = "c")]
        c: PathBuf,
        /// C identifier for the generated names (default: from the file name).
        #[arg(long)]
        name: Option<String>,
        /// Pointer width of the target, for the arena size.
        #[arg(long, default_value_t = 32)]
        pointer_width: usize,
        /// TFLM kernels the target builds (kArenaSize is the arena they need): reference or
        /// cmsis-nn (what Arduino and most Cortex-M builds use). With --no-interpreter: portable
        /// (tinyq's C, the default; `reference` means the same) or cmsis-nn (calls CMSIS-NN).
        #[arg(long, default_value = "reference")]
        kernels: String,
        /// Plain C99 without TFLM: the model's operators as calls into a small kernel library
        /// (`portable`: mirrors of TFLM's reference arithmetic), weights as const arrays, one
        /// static arena planned by tinyq, `<name>_invoke(in, out)`.
        #[arg(long)]
        no_interpreter: bool,
    },
    /// Build the exported project against a TensorFlow Lite Micro tree for Cortex-M4, run it on
    /// QEMU (mps2-an386) and compare every output with tinyq; measures the arena TFLM needs,
    /// flash, RAM and executed instructions per inference.
    Verify(crate::verify::VerifyArgs),
    /// Per-layer error of an INT8 model against its float original: SQNR, cosine, errors in LSB,
    /// clipping, weight spread, the error each layer adds on its own; worst layers first.
    Debug {
        /// The float model (.onnx or .tflite).
        fp32: PathBuf,
        /// The INT8 model (.tflite) made from it.
        int8: PathBuf,
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        json: bool,
        /// Also write a self-contained HTML report with plots (SQNR per layer, activation
        /// histograms with the INT8 range, per-channel weight ranges, outputs, footprint).
        #[arg(long, value_name = "FILE")]
        html: Option<PathBuf>,
    },
    /// Write a float model (.onnx or FP32 .tflite) as ONNX, with the same inputs and outputs.
    Convert(crate::convert::ConvertArgs),
    /// The ONNX ops tinyq imports.
    Ops {
        #[arg(long)]
        json: bool,
    },
}

/// Where samples come from and how to read them.
#[derive(Args)]
pub struct DataArgs {
    /// Dataset: .npz, .npy, MNIST-style IDX (.gz), an image folder (one subfolder per class),
    /// or raw .bin files (with --shape and --dtype).
    #[arg(long)]
    pub data: PathBuf,
    /// Array(s) holding the inputs, comma-separated in model-input order (default: `x`, or the
    /// model's input names when it has several).
    #[arg(long = "x", value_delimiter = ',')]
    pub x: Vec<String>,
    /// Use only the first N samples.
    #[arg(long)]
    pub limit: Option<usize>,
    #[command(flatten)]
    pub load: LoadArgs,
}

/// How to read image folders and raw files.
#[derive(Args)]
pub struct LoadArgs {
    /// Images: resize to HxW (e.g. 32x32).
    #[arg(long)]
    pub resize: Option<String>,
    /// Images: multiply pixel values by this (default 1/255).
    #[arg(long)]
    pub scale: Option<f32>,
    /// Images: per-channel mean subtracted after scaling (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub mean: Vec<f32>,
    /// Images: per-channel standard deviation divided after the mean (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub std: Vec<f32>,
    /// Images: nhwc or nchw.
    #[arg(long, default_value = "nhwc")]
    pub layout: String,
    /// Images: load as one grayscale channel.
    #[arg(long)]
    pub grayscale: bool,
    /// Raw .bin: shape of one sample (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub shape: Vec<usize>,
    /// Raw .bin: element type (float32, uint8, int8, int16, int32, int64).
    #[arg(long)]
    pub dtype: Option<String>,
}

/// `tinyq quantize` flags.
#[derive(Args)]
pub struct QuantizeArgs {
    /// The FP32 model (.onnx or .tflite).
    pub model: PathBuf,
    /// Calibration data (any format `--data` takes).
    #[arg(long)]
    pub calib: PathBuf,
    /// Calibration array(s) (default: `x_calib` when present, else `x`).
    #[arg(long = "x", value_delimiter = ',')]
    pub x: Vec<String>,
    /// Use only the first N calibration samples.
    #[arg(long)]
    pub calib_samples: Option<usize>,
    /// auto (each tensor's range chosen among minmax, percentile=99.99 and mse by the error it
    /// causes downstream on the calibration set), or one method for every tensor: minmax,
    /// percentile[=P], entropy or mse.
    #[arg(long, default_value = "auto")]
    pub calibration: String,
    /// Empirical bias correction: each conv / dense layer's mean output error per channel on the
    /// calibration set is added to its int32 bias.
    #[arg(long)]
    pub bias_correction: bool,
    /// Cross-layer equalization first: the channel ranges of consecutive conv / depthwise layers
    /// (through no activation or a ReLU) are balanced, the float function unchanged.
    #[arg(long)]
    pub equalize: bool,
    /// No correction unless asked for: by default (with `auto` calibration) equalization and bias
    /// correction are each tried and kept only where they lower the output error on the
    /// calibration set, and AdaRound runs on int4 layers.
    #[arg(long)]
    pub no_corrections: bool,
    /// AdaRound: each conv / dense layer's int8 weights rounded up or down as learned on the
    /// calibration set to keep the layer's output close to the float layer's.
    #[arg(long)]
    pub adaround: bool,
    /// Width of conv, depthwise conv and fully connected weights: int8, or int4 (TFLite INT4,
    /// two weights per byte, as TFLM's kernels take them: symmetric in [-7, 7], per channel for
    /// convolutions and per tensor for fully connected layers; AdaRound on unless
    /// --no-corrections), or mixed (with
    /// --data and --max-drop: int4 in every such layer but the first and last, then the most
    /// sensitive back to int8, as the debugger ranks them, until the drop is within the budget).
    #[arg(long, default_value = "int8", value_name = "int8|int4|mixed")]
    pub weights: String,
    /// The TFLM kernels the file is for: reference or cmsis-nn. Without it, int4 layers some
    /// kernel set computes differently from TFLM's reference kernels keep int8 weights (a
    /// warning names them); with `reference`, every such layer may be int4.
    #[arg(long, value_name = "reference|cmsis-nn")]
    pub kernels: Option<String>,
    /// One weight scale per tensor instead of per output channel: `--per-tensor` (or
    /// `--per-tensor=all`) for every layer, `--per-tensor=dense` for fully-connected layers only
    /// (convolutions stay per channel).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "all", value_name = "all|dense")]
    pub per_tensor: Option<String>,
    /// int8 (model inputs and outputs are int8) or float (QUANTIZE/DEQUANTIZE at the edges).
    #[arg(long, default_value = "int8")]
    pub io: String,
    /// Labelled evaluation set: report FP32 and INT8 metrics side by side.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Labels array of --data.
    #[arg(long = "y", default_value = "y")]
    pub y: String,
    /// Input array of --data (default `x`).
    #[arg(long = "eval-x", default_value = "x")]
    pub eval_x: String,
    /// top1, rmse or auc.
    #[arg(long)]
    pub metric: Option<String>,
    /// Accuracy budget on --data: the largest allowed drop from FP32, in points for top1/auc
    /// (0.5 = half a percentage point), in % of the FP32 value for rmse. Searches per-tensor
    /// calibration, then int16 activations (16x8 layers) and, with --allow-float, float layers
    /// until it holds; refuses otherwise.
    #[arg(long)]
    pub max_drop: Option<f64>,
    /// With --max-drop: the labelled set the search chooses on (same --eval-x and --y arrays);
    /// --data then gives a held-out figure for the file. Default: --data itself.
    #[arg(long)]
    pub tune_data: Option<PathBuf>,
    /// With --max-drop: allow leaving the most sensitive conv/dense layers in float32.
    #[arg(long)]
    pub allow_float: bool,
    /// With --max-drop: do not try int16 activations (16x8 layers) for the sensitive layers.
    #[arg(long)]
    pub no_int16: bool,
    /// With --max-drop: candidates scored per search step at most.
    #[arg(long, default_value_t = 24)]
    pub max_candidates: usize,
    /// Leave these layers in float32 (node or output tensor names, comma-separated; conv,
    /// depthwise conv and fully connected only).
    #[arg(long, value_delimiter = ',')]
    pub keep_float: Vec<String>,
    /// Run these layers with int16 activations (conv, depthwise conv and fully connected with
    /// int8 weights: TFLM's 16x8 kernels; also add, concatenation, max/average pool, mean and reshape); node or
    /// output tensor names, comma-separated, or `all` for every layer that has an int16 kernel.
    #[arg(long, value_delimiter = ',')]
    pub int16: Vec<String>,
    /// Output .tflite file.
    #[arg(short, long)]
    pub output: PathBuf,
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub load: LoadArgs,
}
