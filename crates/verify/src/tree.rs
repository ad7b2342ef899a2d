//! A TensorFlow Lite Micro source tree made by TFLM's `create_tflm_tree.py` for Cortex-M, and
//! which of its files a model needs: TFLM's core, the kernels of the model's operators and, for
//! CMSIS-NN trees, the CMSIS-NN library.

use std::path::{Path, PathBuf};

use crate::{Kernels, VerifyError};

/// A vendored TFLM tree.
#[derive(Clone, Debug)]
pub struct Tree {
    pub root: PathBuf,
    pub kernels: Kernels,
}

const KERNELS_DIR: &str = "tensorflow/lite/micro/kernels";

/// Core directories (every `.cc` in them, tests and test doubles excluded).
const CORE_DIRS: &[&str] = &[
    "tensorflow/lite/micro",
    "tensorflow/lite/micro/arena_allocator",
    "tensorflow/lite/micro/memory_planner",
    "tensorflow/lite/micro/tflite_bridge",
    "tensorflow/lite/micro/cortex_m_generic",
    "tensorflow/lite/core/api",
    "tensorflow/lite/core/c",
    "tensorflow/lite/kernels",
    "tensorflow/lite/kernels/internal",
    "tensorflow/lite/kernels/internal/reference",
    "tensorflow/compiler/mlir/lite/core/api",
    "tensorflow/compiler/mlir/lite/schema",
];

/// Kernel helpers every kernel links against.
const KERNEL_SUPPORT: &[&str] = &["kernel_util", "micro_tensor_utils"];

/// Source-file stems behind `MicroMutableOpResolver` methods whose name does not give them
/// (`AddFooBar` → `foo_bar` otherwise). Each stem also pulls in `<stem>_common.cc` when present.
const METHOD_STEMS: &[(&str, &[&str])] = &[
    ("AddAveragePool2D", &["pooling"]),
    ("AddMaxPool2D", &["pooling"]),
    ("AddL2Pool2D", &["l2_pool_2d"]),
    ("AddConv2D", &["conv"]),
    // depthwise_conv_common.cc reads conv_common.cc's tensor indices (`kConvOutputTensor`).
    ("AddDepthwiseConv2D", &["depthwise_conv", "conv_common"]),
    ("AddTransposeConv", &["transpose_conv"]),
    ("AddRelu", &["activations"]),
    ("AddRelu6", &["activations"]),
    ("AddMean", &["reduce"]),
    ("AddSum", &["reduce"]),
    ("AddReduceMax", &["reduce"]),
    ("AddReduceMin", &["reduce"]),
    ("AddMaximum", &["maximum_minimum"]),
    ("AddMinimum", &["maximum_minimum"]),
    ("AddPadV2", &["pad"]),
    ("AddEqual", &["comparisons"]),
    ("AddNotEqual", &["comparisons"]),
    ("AddLess", &["comparisons"]),
    ("AddLessEqual", &["comparisons"]),
    ("AddGreater", &["comparisons"]),
    ("AddGreaterEqual", &["comparisons"]),
    ("AddAbs", &["elementwise"]),
    ("AddSqrt", &["elementwise"]),
    ("AddRsqrt", &["elementwise"]),
    ("AddSquare", &["elementwise"]),
    ("AddSin", &["elementwise"]),
    ("AddCos", &["elementwise"]),
    ("AddLog", &["elementwise"]),
    ("AddLogicalNot", &["elementwise"]),
    ("AddLogicalAnd", &["logical"]),
    ("AddLogicalOr", &["logical"]),
    ("AddBatchMatMul", &["batch_matmul"]),
    ("AddUnidirectionalSequenceLSTM", &["unidirectional_sequence_lstm", "lstm_eval"]),
];

fn snake(method: &str) -> String {
    let name = method.strip_prefix("Add").unwrap_or(method);
    let mut s = String::new();
    let chars: Vec<char> = name.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let boundary = i > 0
            && c.is_ascii_uppercase()
            && (chars[i - 1].is_ascii_lowercase() || chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase()));
        if boundary {
            s.push('_');
        }
        s.push(c.to_ascii_lowercase());
    }
    s
}

fn sources_in(root: &Path, dir: &str, ext: &[&str]) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(root.join(dir)) else { return Vec::new() };
    let mut v: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().and_then(|e| e.to_str()).is_some_and(|e| ext.contains(&e)))
        .filter(|p| {
            let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            !(n.contains("test") || n.starts_with("fake_") || n.starts_with("mock_"))
        })
        .map(|p| p.strip_prefix(root).expect("listed under root").to_path_buf())
        .collect();
    v.sort();
    v
}

fn sources_below(root: &Path, dir: &str, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(root.join(dir)) else { return };
    let mut entries: Vec<_> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        let rel = p.strip_prefix(root).expect("listed under root").to_path_buf();
        if p.is_dir() {
            sources_below(root, &rel.to_string_lossy(), out);
        } else if p.extension().is_some_and(|e| e == "c") {
            out.push(rel);
        }
    }
}

impl Tree {
    /// Checks that `root` looks like a TFLM tree for `kernels`.
    pub fn open(root: &Path, kernels: Kernels) -> Result<Tree, VerifyError> {
        let missing = |what: &str| VerifyError::BadTree { dir: root.to_path_buf(), reason: what.to_string() };
        if !root.is_dir() {
            return Err(missing("no such directory"));
        }
        if !root.join("tensorflow/lite/micro/micro_interpreter.cc").is_file() {
            return Err(missing(
                "no tensorflow/lite/micro/micro_interpreter.cc: not a tree made by TFLM's create_tflm_tree.py",
            ));
        }
        let has_cmsis_nn = root.join("third_party/cmsis_nn/Include/arm_nnfunctions.h").is_file();
        match kernels {
            Kernels::CmsisNn if !has_cmsis_nn => {
                return Err(missing(
                    "no third_party/cmsis_nn: generate it with OPTIMIZED_KERNEL_DIR=cmsis_nn for --kernels cmsis-nn",
                ))
            }
            Kernels::Reference if has_cmsis_nn => {
                return Err(missing("it holds CMSIS-NN kernels; use --kernels cmsis-nn or a reference-kernel tree"))
            }
            _ => {}
        }
        Ok(Tree { root: root.canonicalize().unwrap_or_else(|_| root.to_path_buf()), kernels })
    }

    /// Preprocessor and include flags for this tree.
    pub fn defines_and_includes(&self) -> Vec<String> {
        let t = self.root.display();
        let mut v: Vec<String> = [
            "-DTF_LITE_STATIC_MEMORY",
            "-DTF_LITE_DISABLE_X86_NEON",
            "-DTF_LITE_MCU_DEBUG_LOG",
            "-DCPU_M4=1",
            "-DARMCM4",
            "-DCMSIS_DEVICE_ARM_CORTEX_M_XX_HEADER_FILE=\"ARMCM4.h\"",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for inc in [
            "",
            "/third_party",
            "/third_party/gemmlowp",
            "/third_party/flatbuffers/include",
            "/third_party/kissfft",
            "/third_party/ruy",
            "/third_party/cmsis/Cortex_DFP/Device/ARMCM4/Include",
            "/third_party/cmsis/CMSIS/Core/Include",
        ] {
            v.push(format!("-I{t}{inc}"));
        }
        if self.kernels == Kernels::CmsisNn {
            v.extend(["-DCMSIS_NN", "-DARM_NN_ENABLE_F16=0", "-DARM_NN_ENABLE_F32=0"].map(String::from));
            for inc in ["/third_party/cmsis", "/third_party/cmsis_nn", "/third_party/cmsis_nn/Include"] {
                v.push(format!("-I{t}{inc}"));
            }
        }
        v
    }

    /// The kernel file of `stem`: the CMSIS-NN version when the tree has one.
    fn kernel_file(&self, stem: &str) -> Option<PathBuf> {
        let optimized = Path::new(KERNELS_DIR).join("cmsis_nn").join(format!("{stem}.cc"));
        let plain = Path::new(KERNELS_DIR).join(format!("{stem}.cc"));
        [optimized, plain].into_iter().find(|p| self.root.join(p).is_file())
    }

    /// Relative paths of every source the given resolver methods need.
    pub fn sources_for(&self, methods: &[&str]) -> Result<Vec<PathBuf>, VerifyError> {
        let mut v = Vec::new();
        for dir in CORE_DIRS {
            v.extend(sources_in(&self.root, dir, &["cc"]));
        }
        let mut stems: Vec<String> = KERNEL_SUPPORT.iter().map(|s| s.to_string()).collect();
        for m in methods {
            match METHOD_STEMS.iter().find(|(name, _)| name == m) {
                Some((_, list)) => stems.extend(list.iter().map(|s| s.to_string())),
                None => stems.push(snake(m)),
            }
        }
        stems.sort();
        stems.dedup();
        for stem in &stems {
            let file = self.kernel_file(stem).ok_or_else(|| VerifyError::BadTree {
                dir: self.root.clone(),
                reason: format!("no kernel source {KERNELS_DIR}/{stem}.cc"),
            })?;
            v.push(file);
            if let Some(common) = self.kernel_file(&format!("{stem}_common")) {
                v.push(common);
            }
        }
        if self.kernels == Kernels::CmsisNn {
            sources_below(&self.root, "third_party/cmsis_nn/Source", &mut v);
        }
        v.sort();
        v.dedup();
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::{snake, Kernels, Tree};
    use std::path::Path;

    /// A depthwise-only model links: its common file needs the convolution's (with either kernel
    /// set). Skips when the vendored trees are not beside the repository.
    #[test]
    fn depthwise_pulls_in_the_convolution_common_file() {
        let vendor = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vendor");
        for (dir, kernels) in [("tflm-ref", Kernels::Reference), ("tflm-cmsis-nn", Kernels::CmsisNn)] {
            let Ok(tree) = Tree::open(&vendor.join(dir), kernels) else {
                eprintln!("skipped: no TFLM tree at {}", vendor.join(dir).display());
                continue;
            };
            let sources = tree.sources_for(&["AddDepthwiseConv2D"]).expect("sources");
            assert!(sources.iter().any(|p| p.ends_with("kernels/conv_common.cc")), "{dir}: {sources:?}");
        }
    }

    #[test]
    fn resolver_methods_name_their_kernel_files() {
        assert_eq!(snake("AddFullyConnected"), "fully_connected");
        assert_eq!(snake("AddHardSwish"), "hard_swish");
        assert_eq!(snake("AddStridedSlice"), "strided_slice");
        assert_eq!(snake("AddLeakyRelu"), "leaky_relu");
    }
}
