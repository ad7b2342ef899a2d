//! Compiles the generated C++: the parts without TFLM headers (model data, settings) with the
//! host g++ and with arm-none-eabi-g++ for a Cortex-M4, warning-free under
//! `-std=c++17 -Wall -Wextra -Werror`; the TFLM-dependent parts (ops header, main.cpp, sketch)
//! are syntax-checked against small stand-in headers that declare the TFLM API they use.
//! A missing compiler is a failure, not a skip.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use tinyq_export_c::{generate, resolver_method, write_dir};

const FLAGS: &[&str] = &["-std=c++17", "-Wall", "-Wextra", "-Werror"];

fn compiler(bin: &str) -> PathBuf {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join(bin)).find(|c| c.is_file()))
        .unwrap_or_default();
    found.unwrap_or_else(|| {
        panic!(
            "`{bin}` was not found on PATH. Install it to run this test: \
             `apt-get install -y gcc-arm-none-eabi` for arm-none-eabi-g++ (Debian/Ubuntu), `g++` for the host compiler"
        )
    })
}

fn run(cc: &Path, extra: &[&str], args: &[&str], dir: &Path) {
    let out = Command::new(cc)
        .args(FLAGS)
        .args(extra)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", cc.display()));
    assert!(
        out.status.success(),
        "{} {extra:?} {args:?} failed:\n{}{}",
        cc.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn probe(name: &str) -> String {
    format!(
        "#include \"{name}_settings.h\"\n#include \"{name}_model_data.h\"\n\n\
static_assert({name}::kInputCount >= 1 && {name}::kOutputCount >= 1, \"io\");\n\
static_assert({name}::kInput0Dims >= 1, \"dims\");\n\
unsigned int {name}_probe();\n\
unsigned int {name}_probe() {{\n\
  unsigned int s = {name}::kArenaSize + static_cast<unsigned int>({name}::kInput0Elements);\n\
  s += static_cast<unsigned int>({name}::kInput0Shape[0] + {name}::kOutput0Shape[0] + {name}::kInput0Type);\n\
  s += static_cast<unsigned int>({name}::kInput0TypeName[0]) + ({name}::kInput0Quantized ? 1u : 0u);\n\
  s += static_cast<unsigned int>({name}::kInput0Scale * 1000.0f + static_cast<float>({name}::kOutput0ZeroPoint));\n\
  return s + {name}_model_data[0] + {name}_model_data_len;\n}}\n"
    )
}

/// Models to compile: a synthetic one always, plus the shared int8 models when present.
fn models() -> Vec<(String, Vec<u8>)> {
    let mut out = vec![("synthetic".to_string(), model(&[(9, None), (25, None)], &[0, 1]))];
    match shared_int8_models() {
        Some(list) => {
            for p in list {
                out.push((p.display().to_string(), std::fs::read(&p).unwrap()));
            }
        }
        None => println!("SKIPPED shared models: ../../../shared/models not found (synthetic model only)"),
    }
    out
}

fn check_with(bin: &str, target_flags: &[&str]) {
    let cc = compiler(bin);
    for (label, bytes) in models() {
        let dir = tempfile::tempdir().unwrap();
        let files = generate(&bytes, "net", 20_000).unwrap();
        write_dir(dir.path(), &files).unwrap();
        std::fs::write(dir.path().join("probe.cc"), probe("net")).unwrap();
        run(&cc, target_flags, &["-c", "net_model_data.cc", "-o", "net_model_data.o"], dir.path());
        run(&cc, target_flags, &["-c", "probe.cc", "-o", "probe.o"], dir.path());
        println!("RAN: {bin} {target_flags:?} on {label}");
    }
}

#[test]
fn model_data_and_settings_compile_on_host() {
    check_with("g++", &[]);
}

#[test]
fn model_data_and_settings_compile_for_cortex_m4() {
    check_with("arm-none-eabi-g++", &["-mcpu=cortex-m4", "-mthumb"]);
}

/// Stand-ins for the TFLM and Arduino declarations the generated code uses.
fn stub_headers(root: &Path) {
    let w = |rel: &str, text: String| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    let mut adds = String::new();
    let mut methods: Vec<&str> = (0..256).filter_map(resolver_method).collect();
    methods.sort();
    methods.dedup();
    for m in methods {
        adds.push_str(&format!("  TfLiteStatus {m}() {{ return ++n_ <= N ? kTfLiteOk : kTfLiteError; }}\n"));
    }
    w(
        "tensorflow/lite/micro/micro_mutable_op_resolver.h",
        format!(
            "#pragma once\n#include <stddef.h>\n#include <stdint.h>\n\
typedef enum {{ kTfLiteOk = 0, kTfLiteError = 1 }} TfLiteStatus;\n\
typedef union {{ int32_t* i32; int64_t* i64; float* f; char* raw; uint8_t* uint8; int16_t* i16; int8_t* int8; }} TfLitePtrUnion;\n\
typedef struct {{ int type; TfLitePtrUnion data; size_t bytes; }} TfLiteTensor;\n\
namespace tflite {{\nclass MicroOpResolver {{}};\n\
template <unsigned int N> class MicroMutableOpResolver : public MicroOpResolver {{\n public:\n  static_assert(N > 0, \"empty resolver\");\n{adds} private:\n  unsigned int n_ = 0;\n}};\n}}\n"
        ),
    );
    w(
        "tensorflow/lite/schema/schema_generated.h",
        "#pragma once\n#include <stdint.h>\n#define TFLITE_SCHEMA_VERSION (3)\nnamespace tflite {\n\
struct Model { uint32_t version() const { return 3; } };\n\
inline const Model* GetModel(const void* p) { return static_cast<const Model*>(p); }\n}\n"
            .into(),
    );
    w(
        "tensorflow/lite/micro/micro_interpreter.h",
        "#pragma once\n#include \"tensorflow/lite/micro/micro_mutable_op_resolver.h\"\n\
#include \"tensorflow/lite/schema/schema_generated.h\"\nnamespace tflite {\nclass MicroInterpreter {\n public:\n\
  MicroInterpreter(const Model*, const MicroOpResolver&, uint8_t*, size_t) {}\n\
  TfLiteStatus AllocateTensors() { return kTfLiteOk; }\n  TfLiteStatus Invoke() { return kTfLiteOk; }\n\
  TfLiteTensor* input(size_t) { return &t_; }\n  TfLiteTensor* output(size_t) { return &t_; }\n\
  size_t arena_used_bytes() const { return 0; }\n private:\n  TfLiteTensor t_{};\n};\n}\n"
            .into(),
    );
    w("tensorflow/lite/micro/micro_log.h", "#pragma once\nvoid MicroPrintf(const char* format, ...);\n".into());
    w("tensorflow/lite/micro/system_setup.h", "#pragma once\nnamespace tflite { void InitializeTarget(); }\n".into());
    w("Chirale_TensorFlowLite.h", "#pragma once\n".into());
    w(
        "Arduino.h",
        "#pragma once\n#include <stdint.h>\n#define HIGH 1\n#define LOW 0\n#define OUTPUT 1\n#define LED_BUILTIN 13\n\
void pinMode(int, int);\nvoid digitalWrite(int, int);\nunsigned long millis();\nunsigned long micros();\nvoid delay(unsigned long);\n\
struct SerialStub {\n  void begin(unsigned long) {}\n  explicit operator bool() const { return true; }\n\
  void print(const char*) {}\n  void print(int) {}\n  void println(const char*) {}\n  void println(unsigned long) {}\n\
  void println(float, int) {}\n};\nextern SerialStub Serial;\n"
            .into(),
    );
}

#[test]
fn tflm_parts_pass_a_syntax_check_against_stand_in_headers() {
    let cc = compiler("g++");
    for (label, bytes) in models() {
        let dir = tempfile::tempdir().unwrap();
        let stubs = dir.path().join("stubs");
        stub_headers(&stubs);
        let files = generate(&bytes, "net", 20_000).unwrap();
        write_dir(dir.path(), &files).unwrap();
        let inc = format!("-I{}", stubs.display());
        run(&cc, &[&inc, "-fsyntax-only"], &["main.cpp"], dir.path());
        run(&cc, &[&inc, "-fsyntax-only", "-DARDUINO=10819"], &["main.cpp"], dir.path());
        run(
            &cc,
            &[&inc, "-fsyntax-only", "-DARDUINO=10819", "-include", "Arduino.h", "-x", "c++"],
            &["net.ino"],
            dir.path(),
        );
        println!("RAN: stand-in TFLM syntax check on {label}");
    }
}
