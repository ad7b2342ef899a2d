//! The text of each generated file.

use crate::model::{c_type, IoTensor, ModelInfo};
use crate::{GeneratedFile, GENERATED_MARKER};
use std::fmt::Write;

pub(crate) fn files(
    bytes: &[u8],
    name: &str,
    arena_bytes: usize,
    info: &ModelInfo,
    methods: &[(&str, &str)],
) -> Vec<GeneratedFile> {
    let f = |path: String, contents: String| GeneratedFile { path: path.into(), contents, user_editable: false };
    let example = |path: String, contents: String| GeneratedFile { path: path.into(), contents, user_editable: true };
    vec![
        f(format!("{name}_model_data.h"), model_data_h(name, bytes.len())),
        f(format!("{name}_model_data.cc"), model_data_cc(name, bytes)),
        f(format!("{name}_settings.h"), settings_h(name, arena_bytes, info)),
        f(format!("{name}_ops.h"), ops_h(name, methods)),
        example("main.cpp".to_string(), main_cpp(name, info)),
        example(format!("{name}.ino"), sketch(name, info)),
        example("platformio.ini".to_string(), platformio_ini(name)),
    ]
}

fn guard(name: &str, what: &str) -> String {
    format!("{}_{what}_H_", name.to_ascii_uppercase())
}

fn header(name: &str, what: &str) -> String {
    format!("// {GENERATED_MARKER} for model `{name}`: {what}.\n// Re-run `tinyq export` instead of editing.\n")
}

/// Header of the example files, which are meant to be edited: removing the marker line is
/// what tells `write_dir` to leave them alone on the next export.
fn example_header(name: &str, what: &str) -> String {
    format!(
        "// {GENERATED_MARKER} for model `{name}`: {what}.\n\
// An example to adapt: delete the line above and `tinyq export` will no longer replace this file.\n"
    )
}

fn model_data_h(name: &str, len: usize) -> String {
    let g = guard(name, "MODEL_DATA");
    format!(
        "{}\
#ifndef {g}
#define {g}

// The .tflite flatbuffer ({len} bytes). TensorFlow Lite Micro reads it in place, so the
// definition in {name}_model_data.cc keeps it 16-byte aligned.
extern const unsigned char {name}_model_data[];
// Its length in bytes.
extern const unsigned int {name}_model_data_len;

#endif  // {g}
",
        header(name, "the model as a C array")
    )
}

fn model_data_cc(name: &str, bytes: &[u8]) -> String {
    let mut s = header(name, "the model as a C array");
    let _ = write!(s, "#include \"{name}_model_data.h\"\n\nalignas(16) const unsigned char {name}_model_data[] = {{\n");
    for chunk in bytes.chunks(12) {
        s.push_str("   ");
        for b in chunk {
            let _ = write!(s, " 0x{b:02x},");
        }
        s.push('\n');
    }
    let n = bytes.len();
    let _ = write!(
        s,
        "}};\n\nconst unsigned int {name}_model_data_len = {n};\n\n\
static_assert(sizeof({name}_model_data) == {n}, \"model array has the wrong length\");\n"
    );
    s
}

fn c_float(v: f32) -> String {
    if v.is_finite() {
        format!("{v:e}f")
    } else {
        "0.0f".to_string()
    }
}

fn settings_h(name: &str, arena_bytes: usize, info: &ModelInfo) -> String {
    let g = guard(name, "SETTINGS");
    let mut s = header(name, "sizes, shapes and quantization as constants");
    let _ = write!(
        s,
        "// Plain C++ constants: this header needs no TensorFlow Lite Micro headers.\n\
#ifndef {g}\n#define {g}\n\nnamespace {name} {{\n\n\
// Bytes of tensor arena to give tflite::MicroInterpreter (from tinyq's arena planner).\n\
constexpr unsigned int kArenaSize = {arena_bytes};\n\n\
constexpr int kInputCount = {};\nconstexpr int kOutputCount = {};\n",
        info.inputs.len(),
        info.outputs.len()
    );
    for (kind, list) in [("Input", &info.inputs), ("Output", &info.outputs)] {
        for (i, t) in list.iter().enumerate() {
            io_constants(&mut s, &format!("k{kind}{i}"), t);
        }
    }
    let _ = write!(s, "\n}}  // namespace {name}\n\n#endif  // {g}\n");
    s
}

fn io_constants(s: &mut String, p: &str, t: &IoTensor) {
    let ct = c_type(t.tensor_type);
    let shape = if t.shape.is_empty() { vec![1] } else { t.shape.clone() };
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let clean: String = t.name.chars().filter(|c| !c.is_control() && *c != '*' && *c != '/').collect();
    let _ = write!(
        s,
        "\n// `{clean}`: {} {:?}\n\
constexpr int {p}Dims = {};\n\
constexpr int {p}Shape[{p}Dims] = {{{}}};\n\
constexpr int {p}Elements = {};\n\
constexpr int {p}Type = {};  // TfLiteType {}\n\
constexpr const char {p}TypeName[] = \"{}\";\n",
        ct.short,
        t.shape,
        shape.len(),
        dims.join(", "),
        t.elements(),
        ct.tflite_type,
        ct.tflite_enum,
        ct.short
    );
    let quantized = !t.scales.is_empty();
    let scale = t.scales.first().copied().unwrap_or(0.0);
    let zp = t.zero_points.first().copied().unwrap_or(0);
    let _ = write!(
        s,
        "constexpr bool {p}Quantized = {quantized};\n\
// real_value = Scale * (quantized_value - ZeroPoint)\n\
constexpr float {p}Scale = {};\n\
constexpr int {p}ZeroPoint = {};\n",
        c_float(scale),
        zp.clamp(i32::MIN as i64, i32::MAX as i64)
    );
    if t.scales.len() > 1 {
        let scales: Vec<String> = t.scales.iter().map(|&v| c_float(v)).collect();
        let zps: Vec<String> = (0..t.scales.len())
            .map(|k| t.zero_points.get(k).copied().unwrap_or(0).clamp(i32::MIN as i64, i32::MAX as i64).to_string())
            .collect();
        let _ = write!(
            s,
            "// Per-channel quantization: {n} scales and zero points.\n\
constexpr int {p}ScaleCount = {n};\n\
constexpr float {p}Scales[{p}ScaleCount] = {{{}}};\n\
constexpr int {p}ZeroPoints[{p}ScaleCount] = {{{}}};\n",
            scales.join(", "),
            zps.join(", "),
            n = t.scales.len()
        );
    }
}

fn ops_h(name: &str, methods: &[(&str, &str)]) -> String {
    let g = guard(name, "OPS");
    let mut s = header(name, "the operator resolver");
    let _ = write!(
        s,
        "#ifndef {g}\n#define {g}\n\n\
#include \"tensorflow/lite/micro/micro_mutable_op_resolver.h\"\n\n\
namespace {name} {{\n\n\
// Distinct operators the model uses; the resolver has room for exactly these.\n\
constexpr unsigned int kOpCount = {};\n\
using OpResolver = tflite::MicroMutableOpResolver<kOpCount>;\n\n\
// Registers every operator of the model. Returns kTfLiteError if one fails.\n\
inline TfLiteStatus RegisterOps(OpResolver& resolver) {{\n",
        methods.len()
    );
    for (m, op) in methods {
        let _ = writeln!(s, "  if (resolver.{m}() != kTfLiteOk) return kTfLiteError;  // {op}");
    }
    let _ = write!(s, "  return kTfLiteOk;\n}}\n\n}}  // namespace {name}\n\n#endif  // {g}\n");
    s
}

/// `FillInputs()` and `ReportOutputs()`, shared by main.cpp and the sketch. Both use the
/// file's `interpreter` pointer and `Report(output, index, value)`.
fn io_functions(name: &str, info: &ModelInfo) -> String {
    let mut s = String::from(
        "// Puts the value that means 0.0 into every input. Replace with real data (sensor\n\
// readings quantized as Scale/ZeroPoint in the settings header say).\n\
static void FillInputs() {\n",
    );
    for (i, t) in info.inputs.iter().enumerate() {
        let ct = c_type(t.tensor_type);
        let p = format!("{name}::kInput{i}");
        let _ = writeln!(s, "  {{\n    TfLiteTensor* t = interpreter->input({i});");
        match (ct.c_type, ct.member) {
            (Some("float"), Some(m)) => {
                let _ = writeln!(s, "    for (int i = 0; i < {p}Elements; ++i) t->data.{m}[i] = 0.0f;");
            }
            (Some(c), Some(m)) => {
                let _ = writeln!(
                    s,
                    "    for (int i = 0; i < {p}Elements; ++i) t->data.{m}[i] = static_cast<{c}>({p}ZeroPoint);"
                );
            }
            _ => {
                let _ = writeln!(s, "    memset(t->data.raw, 0, t->bytes);");
            }
        }
        s.push_str("  }\n");
    }
    s.push_str(
        "}\n\n// Reports the largest element of each output and its real (dequantized) value.\n\
static void ReportOutputs() {\n",
    );
    for (i, t) in info.outputs.iter().enumerate() {
        let ct = c_type(t.tensor_type);
        let p = format!("{name}::kOutput{i}");
        let Some(m) = ct.member else {
            let _ = writeln!(s, "  // Output {i} is {}; read interpreter->output({i}) yourself.", ct.short);
            continue;
        };
        let value = if ct.c_type == Some("float") {
            format!("t->data.{m}[i]")
        } else {
            format!("(static_cast<float>(t->data.{m}[i]) - static_cast<float>({p}ZeroPoint)) * ({p}Quantized ? {p}Scale : 1.0f)")
        };
        let _ = write!(
            s,
            "  {{\n    const TfLiteTensor* t = interpreter->output({i});\n    int best = 0;\n    float best_value = 0.0f;\n\
\x20\x20\x20\x20for (int i = 0; i < {p}Elements; ++i) {{\n      const float v = {value};\n\
\x20\x20\x20\x20\x20\x20if (i == 0 || v > best_value) {{\n        best = i;\n        best_value = v;\n      }}\n    }}\n\
\x20\x20\x20\x20Report({i}, best, best_value);\n  }}\n"
        );
    }
    s.push_str("}\n");
    s
}

fn main_cpp(name: &str, info: &ModelInfo) -> String {
    let mut s = example_header(name, "example program");
    let _ = write!(
        s,
        "// Loads the model, allocates the arena, fills the inputs, runs it once and prints the\n\
// outputs through MicroPrintf. For a host build or a bare-metal project linked against\n\
// TensorFlow Lite Micro; Arduino builds (ARDUINO defined) use {name}.ino instead.\n\
#ifndef ARDUINO\n\n\
#include <stdint.h>\n#include <string.h>\n\n\
#include \"tensorflow/lite/micro/micro_interpreter.h\"\n\
#include \"tensorflow/lite/micro/micro_log.h\"\n\
#include \"tensorflow/lite/micro/system_setup.h\"\n\
#include \"tensorflow/lite/schema/schema_generated.h\"\n\n\
#include \"{name}_model_data.h\"\n#include \"{name}_ops.h\"\n#include \"{name}_settings.h\"\n\n\
alignas(16) static uint8_t tensor_arena[{name}::kArenaSize];\n\
static tflite::MicroInterpreter* interpreter = nullptr;\n\n\
static void Report(int output, int index, float value) {{\n\
\x20\x20MicroPrintf(\"output %d: largest element %d, value %f\", output, index, static_cast<double>(value));\n}}\n\n\
{}\n\
int main() {{\n\
\x20\x20tflite::InitializeTarget();\n\
\x20\x20const tflite::Model* model = tflite::GetModel({name}_model_data);\n\
\x20\x20if (model->version() != TFLITE_SCHEMA_VERSION) {{\n\
\x20\x20\x20\x20MicroPrintf(\"model schema version %d, this TFLM reads %d\", static_cast<int>(model->version()),\n\
\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20static_cast<int>(TFLITE_SCHEMA_VERSION));\n    return 1;\n  }}\n\
\x20\x20static {name}::OpResolver resolver;\n\
\x20\x20if ({name}::RegisterOps(resolver) != kTfLiteOk) {{\n\
\x20\x20\x20\x20MicroPrintf(\"registering the model's operators failed\");\n    return 1;\n  }}\n\
\x20\x20static tflite::MicroInterpreter static_interpreter(model, resolver, tensor_arena, {name}::kArenaSize);\n\
\x20\x20interpreter = &static_interpreter;\n\
\x20\x20if (interpreter->AllocateTensors() != kTfLiteOk) {{\n\
\x20\x20\x20\x20MicroPrintf(\"AllocateTensors failed: is the %d-byte arena too small?\", static_cast<int>({name}::kArenaSize));\n\
\x20\x20\x20\x20return 1;\n  }}\n\
\x20\x20MicroPrintf(\"arena: %d of %d bytes used\", static_cast<int>(interpreter->arena_used_bytes()),\n\
\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20\x20static_cast<int>({name}::kArenaSize));\n\
\x20\x20FillInputs();\n\
\x20\x20if (interpreter->Invoke() != kTfLiteOk) {{\n    MicroPrintf(\"Invoke failed\");\n    return 1;\n  }}\n\
\x20\x20ReportOutputs();\n  return 0;\n}}\n\n#endif  // ARDUINO\n",
        io_functions(name, info)
    );
    s
}

fn sketch(name: &str, info: &ModelInfo) -> String {
    let mut s = example_header(name, "Arduino sketch");
    let _ = write!(
        s,
        "// Runs the model in a loop, prints the result and the inference time on the serial port\n\
// (115200 baud) and toggles LED_BUILTIN after every inference. Needs a TensorFlow Lite Micro\n\
// Arduino library (Chirale_TensorFlowLite, or Arduino_TensorFlowLite) and this directory as the\n\
// sketch folder, which the Arduino IDE wants named `{name}`.\n\
#if __has_include(<Chirale_TensorFlowLite.h>)\n#include <Chirale_TensorFlowLite.h>\n\
#elif __has_include(<TensorFlowLite.h>)\n#include <TensorFlowLite.h>\n#endif\n\
#include <string.h>\n\n\
#include \"tensorflow/lite/micro/micro_interpreter.h\"\n\
#include \"tensorflow/lite/schema/schema_generated.h\"\n\n\
#include \"{name}_model_data.h\"\n#include \"{name}_ops.h\"\n#include \"{name}_settings.h\"\n\n\
alignas(16) static uint8_t tensor_arena[{name}::kArenaSize];\n\
static {name}::OpResolver op_resolver;\n\
static tflite::MicroInterpreter* interpreter = nullptr;\n\n\
static void Report(int output, int index, float value) {{\n\
\x20\x20Serial.print(\"output \");\n  Serial.print(output);\n  Serial.print(\": largest element \");\n\
\x20\x20Serial.print(index);\n  Serial.print(\", value \");\n  Serial.println(value, 4);\n}}\n\n\
static void Blink() {{\n#ifdef LED_BUILTIN\n  static bool led_on = false;\n  led_on = !led_on;\n\
\x20\x20digitalWrite(LED_BUILTIN, led_on ? HIGH : LOW);\n#endif\n}}\n\n\
{}\n\
void setup() {{\n\
\x20\x20Serial.begin(115200);\n  while (!Serial && millis() < 3000) {{\n  }}\n\
#ifdef LED_BUILTIN\n  pinMode(LED_BUILTIN, OUTPUT);\n#endif\n\
\x20\x20const tflite::Model* model = tflite::GetModel({name}_model_data);\n\
\x20\x20if (model->version() != TFLITE_SCHEMA_VERSION) {{\n\
\x20\x20\x20\x20Serial.println(\"model schema version does not match the TFLM library\");\n    return;\n  }}\n\
\x20\x20if ({name}::RegisterOps(op_resolver) != kTfLiteOk) {{\n\
\x20\x20\x20\x20Serial.println(\"registering the model's operators failed\");\n    return;\n  }}\n\
\x20\x20static tflite::MicroInterpreter static_interpreter(model, op_resolver, tensor_arena, {name}::kArenaSize);\n\
\x20\x20if (static_interpreter.AllocateTensors() != kTfLiteOk) {{\n\
\x20\x20\x20\x20Serial.println(\"AllocateTensors failed: arena too small?\");\n    return;\n  }}\n\
\x20\x20interpreter = &static_interpreter;\n\
\x20\x20Serial.print(\"arena bytes used: \");\n  Serial.println(static_cast<unsigned long>(interpreter->arena_used_bytes()));\n}}\n\n\
void loop() {{\n\
\x20\x20if (interpreter == nullptr) {{  // setup failed: blink fast\n    Blink();\n    delay(100);\n    return;\n  }}\n\
\x20\x20FillInputs();\n\
\x20\x20const unsigned long start = micros();\n\
\x20\x20const TfLiteStatus status = interpreter->Invoke();\n\
\x20\x20const unsigned long elapsed = micros() - start;\n\
\x20\x20if (status != kTfLiteOk) {{\n    Serial.println(\"Invoke failed\");\n    delay(1000);\n    return;\n  }}\n\
\x20\x20Serial.print(\"inference us: \");\n  Serial.println(elapsed);\n\
\x20\x20ReportOutputs();\n  Blink();\n  delay(500);\n}}\n",
        io_functions(name, info)
    );
    s
}

fn platformio_ini(name: &str) -> String {
    format!(
        "; {GENERATED_MARKER} for model `{name}`: PlatformIO project.\n\
; Delete the line above to keep your edits: `tinyq export` then leaves this file alone.\n\
; `pio run -e ENV -t upload`, then `pio device monitor`. Builds this directory in place\n\
; ({name}.ino, {name}_model_data.cc; main.cpp compiles to nothing under Arduino).\n\
[platformio]\nsrc_dir = .\ndefault_envs = nano33ble\n\n\
[env]\nframework = arduino\nmonitor_speed = 115200\n\
build_src_filter = +<*.ino> +<*.cc> +<*.cpp>\n\
lib_deps = https://github.com/spaziochirale/Chirale_TensorFlowLite.git\n\n\
[env:nano33ble]\nplatform = nordicnrf52\nboard = nano33ble\n\n\
[env:nanorp2040connect]\nplatform = raspberrypi\nboard = nanorp2040connect\n\n\
[env:pico]\nplatform = raspberrypi\nboard = pico\n\n\
[env:uno_r4_minima]\nplatform = renesas-ra\nboard = uno_r4_minima\n\n\
[env:esp32dev]\nplatform = espressif32\nboard = esp32dev\n\n\
[env:esp32s3]\nplatform = espressif32\nboard = esp32-s3-devkitc-1\n\n\
[env:disco_f746ng]\nplatform = ststm32\nboard = disco_f746ng\n\n\
[env:nucleo_l4r5zi]\nplatform = ststm32\nboard = nucleo_l4r5zi\n\n\
[env:portenta_h7_m7]\nplatform = ststm32\nboard = portenta_h7_m7\n"
    )
}
