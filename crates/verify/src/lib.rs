//! `tinyq-verify`: a `.tflite` model built against a real TensorFlow Lite Micro tree for an Arm
//! Cortex-M4 and run on QEMU's `mps2-an386` board.
//!
//! [`Session`] holds the toolchain ([`Toolchain::find`]), the TFLM tree ([`Tree::open`]) and an
//! object cache. It builds:
//!
//! * a **runner** for one model ([`Session::model_runner`]): the sources `tinyq export` writes
//!   (model data, op resolver, settings) plus tinyq's runner, which runs samples read from a host
//!   file, bisects for the smallest arena, or checks one arena size;
//! * a **file runner** ([`Session::file_runner`]): the same runner with a resolver for a fixed
//!   operator set and the model read from a host file, so one image serves many models;
//! * the exported **`main.cpp`** unchanged ([`Session::exported_main`]).
//!
//! TFLM's core, the kernels of the model's operators and (for CMSIS-NN) the CMSIS-NN library are
//! compiled once per tree, compiler and flag set, in parallel, into the cache. [`run`] starts
//! QEMU with tinyq's instruction-count plugin and returns what the guest printed.
//!
//! Formats and engines live elsewhere: this crate compares nothing; the facade compares the
//! outputs with tinyq's integer engine.

mod compile;
mod plain_c;
mod qemu;
mod toolchain;
mod tree;

use std::path::{Path, PathBuf};

pub use compile::{fnv1a, BuildStats, FNV_START};
pub use plain_c::{c_main, c_runner, STRICT_C_FLAGS};
pub use qemu::{arena_fits, minimum_arena, run, RunLog};
pub use toolchain::Toolchain;
pub use tree::Tree;

use compile::Compiler;

pub use tinyq_arena::Kernels;

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{program} not found on PATH: install the Debian package `{package}` (apt-get install {package})")]
    MissingTool { program: String, package: String },
    #[error("TFLM tree {dir}: {reason}")]
    BadTree { dir: PathBuf, reason: String },
    #[error("compiling {file} failed:\n{log}")]
    Compile { file: PathBuf, log: String },
    #[error("linking {elf} failed:\n{log}")]
    Link { elf: PathBuf, log: String },
    #[error("{0}")]
    Tool(String),
    #[error("the program on the Cortex-M4 failed: {0}")]
    Target(String),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Export(#[from] tinyq_export_c::ExportError),
}

impl VerifyError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> VerifyError {
        VerifyError::Io { path: path.to_path_buf(), source }
    }
}

/// tinyq's harness sources (startup, semihosting, C++ runtime hooks, linker script, runner).
const HARNESS: &[(&str, &str)] = &[
    ("semihosting.h", include_str!("../harness/semihosting.h")),
    ("semihosting.c", include_str!("../harness/semihosting.c")),
    ("startup.c", include_str!("../harness/startup.c")),
    ("runtime.cc", include_str!("../harness/runtime.cc")),
    ("log_to_host.cc", include_str!("../harness/log_to_host.cc")),
    ("runner.cc", include_str!("../harness/runner.cc")),
    ("runner_c.c", include_str!("../harness/runner_c.c")),
    ("tq_log.c", include_str!("../harness/tq_log.c")),
    ("cortex_m4.ld", include_str!("../harness/cortex_m4.ld")),
    ("insn_count.c", include_str!("../harness/insn_count.c")),
];

fn harness_hash() -> u64 {
    let mut h = FNV_START;
    for (n, c) in HARNESS {
        h = fnv1a(n.as_bytes(), h);
        h = fnv1a(c.as_bytes(), h);
    }
    h
}

/// A linked program.
#[derive(Clone, Debug)]
pub struct Image {
    pub elf: PathBuf,
    /// The arena buffer the runner owns (bytes).
    pub arena_capacity: usize,
    /// Embedded model bytes (0 when the model is read from a file).
    pub model_bytes: usize,
    /// Read-only image: vectors, code, constants (the model included), `.data` initialisers.
    pub flash_bytes: u64,
    /// Statically allocated RAM: `.data` + `.bss` (the arena buffer included).
    pub static_ram_bytes: u64,
    /// Compile and link of this image, the TFLM library included.
    pub build: BuildStats,
}

/// Toolchain, tree, cache and parallelism for building images.
pub struct Session {
    pub tools: Toolchain,
    pub tree: Tree,
    /// Root of tinyq's cache (objects, images, the plugin).
    pub cache_root: PathBuf,
    pub jobs: usize,
}

/// `$XDG_CACHE_HOME/tinyq` or `~/.cache/tinyq` (`TINYQ_CACHE_DIR` overrides).
pub fn default_cache_root() -> PathBuf {
    if let Some(d) = std::env::var_os("TINYQ_CACHE_DIR") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(d).join("tinyq");
    }
    match std::env::var_os("HOME") {
        Some(h) => PathBuf::from(h).join(".cache/tinyq"),
        None => std::env::temp_dir().join("tinyq-cache"),
    }
}

fn write_if_changed(path: &Path, contents: &str) -> Result<(), VerifyError> {
    if std::fs::read_to_string(path).ok().as_deref() == Some(contents) {
        return Ok(());
    }
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(|e| VerifyError::io(d, e))?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, contents).map_err(|e| VerifyError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| VerifyError::io(path, e))
}

impl Session {
    pub fn new(tflm: &Path, kernels: Kernels) -> Result<Session, VerifyError> {
        let tools = Toolchain::find()?;
        let tree = Tree::open(tflm, kernels)?;
        let jobs = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(Session { tools, tree, cache_root: default_cache_root(), jobs })
    }

    fn compiler(&self) -> Compiler<'_> {
        Compiler { tools: &self.tools, tree: &self.tree, jobs: self.jobs }
    }

    fn tree_cache(&self) -> PathBuf {
        self.compiler().cache_dir(&self.cache_root)
    }

    /// The harness sources written to the cache; returns their folder.
    fn harness_dir(&self) -> Result<PathBuf, VerifyError> {
        let dir = self.tree_cache().join(format!("harness-{:016x}", harness_hash()));
        for (n, c) in HARNESS {
            write_if_changed(&dir.join(n), c)?;
        }
        Ok(dir)
    }

    /// Compiles TFLM for `methods` and the harness objects; returns (objects, stats, harness dir).
    fn library(&self, methods: &[&str]) -> Result<(Vec<PathBuf>, BuildStats, PathBuf), VerifyError> {
        let sources = self.tree.sources_for(methods)?;
        let cache = self.tree_cache();
        let (mut objects, mut stats) = self.compiler().compile_tree(&sources, &cache.join("obj"))?;
        let harness = self.harness_dir()?;
        let inc = vec![format!("-I{}", harness.display())];
        let jobs: Vec<(PathBuf, PathBuf)> = ["startup.c", "semihosting.c", "runtime.cc"]
            .iter()
            .map(|f| (harness.join(f), harness.join(f).with_extension("o")))
            .collect();
        let s = self.compiler().compile_all(&jobs, &inc)?;
        stats.sources += s.sources;
        stats.compiled += s.compiled;
        stats.seconds += s.seconds;
        objects.extend(jobs.into_iter().map(|(_, o)| o));
        Ok((objects, stats, harness))
    }

    fn link_image(
        &self,
        app: &Path,
        app_sources: &[(&str, Vec<String>)],
        methods: &[&str],
        name: &str,
        arena_capacity: usize,
        model_bytes: usize,
    ) -> Result<Image, VerifyError> {
        let start = std::time::Instant::now();
        let (mut objects, mut stats, harness) = self.library(methods)?;
        let mut jobs = Vec::new();
        let mut extra_by_job = Vec::new();
        for (file, extra) in app_sources {
            let src = if app.join(file).is_file() { app.join(file) } else { harness.join(file) };
            jobs.push((src, app.join(file).with_extension("o")));
            extra_by_job.push(extra.clone());
        }
        let inc = vec![format!("-I{}", app.display()), format!("-I{}", harness.display())];
        for (job, extra) in jobs.iter().zip(&extra_by_job) {
            let mut flags = inc.clone();
            flags.extend(extra.iter().cloned());
            let s = self.compiler().compile_all(std::slice::from_ref(job), &flags)?;
            stats.compiled += s.compiled;
            stats.sources += 1;
            objects.push(job.1.clone());
        }
        let elf = app.join(format!("{name}.elf"));
        if !elf.is_file() {
            let tmp = app.join(format!("{name}.{}.elf", std::process::id()));
            self.compiler().link(&objects, &harness.join("cortex_m4.ld"), &tmp)?;
            std::fs::rename(&tmp, &elf).map_err(|e| VerifyError::io(&elf, e))?;
            let _ = std::fs::rename(tmp.with_extension("map"), elf.with_extension("map"));
        }
        stats.seconds = start.elapsed().as_secs_f64();
        let (flash_bytes, static_ram_bytes) = qemu::section_sizes(&self.tools, &elf)?;
        Ok(Image { elf, arena_capacity, model_bytes, flash_bytes, static_ram_bytes, build: stats })
    }

    /// Folder of one application build, keyed by everything that goes into it.
    fn app_dir(&self, kind: &str, key_parts: &[&[u8]]) -> PathBuf {
        let mut h = harness_hash();
        for p in key_parts {
            h = fnv1a(p, h);
            h = fnv1a(b"\0", h);
        }
        self.tree_cache().join("apps").join(format!("{kind}-{h:016x}"))
    }

    /// The runner for one model: the exported sources (`name`, `k_arena_size` as `tinyq export`
    /// writes them) with tinyq's runner, an arena buffer of `arena_capacity` bytes.
    pub fn model_runner(
        &self,
        model: &[u8],
        name: &str,
        k_arena_size: usize,
        arena_capacity: usize,
    ) -> Result<Image, VerifyError> {
        let files = tinyq_export_c::generate(model, name, k_arena_size)?;
        let methods = resolver_methods(model)?;
        let cap = arena_capacity.div_ceil(16) * 16;
        let app = self.app_dir("model", &[model, name.as_bytes(), &k_arena_size.to_le_bytes(), &cap.to_le_bytes()]);
        for f in &files {
            write_if_changed(&app.join(&f.path), &f.contents)?;
        }
        let config = format!(
            "// tinyq verify: the exported model `{name}` for the runner.\n\
#include \"{name}_model_data.h\"\n#include \"{name}_ops.h\"\n#include \"{name}_settings.h\"\n\n\
#define TINYQ_ARENA_CAPACITY {cap}\n\n\
namespace runner {{\n\
using OpResolver = {name}::OpResolver;\n\
inline TfLiteStatus RegisterOps(OpResolver& r) {{ return {name}::RegisterOps(r); }}\n\
inline bool LoadModel(const char*, const tflite::Model** m) {{\n\
\x20\x20*m = tflite::GetModel({name}_model_data);\n  return true;\n}}\n\
}}  // namespace runner\n"
        );
        write_if_changed(&app.join("runner_config.h"), &config)?;
        let sources = [
            (format!("{name}_model_data.cc"), vec![]),
            ("runner.cc".to_string(), vec![]),
            ("log_to_host.cc".into(), vec![]),
        ];
        let sources: Vec<(&str, Vec<String>)> = sources.iter().map(|(f, e)| (f.as_str(), e.clone())).collect();
        // The runner registers its own log callback; log_to_host.cc is not linked into it.
        let sources: Vec<(&str, Vec<String>)> = sources.into_iter().filter(|(f, _)| *f != "log_to_host.cc").collect();
        self.link_image(&app, &sources, &methods, "runner", cap, model.len())
    }

    /// The exported `main.cpp`, unchanged, linked with TFLM and tinyq's startup code.
    pub fn exported_main(&self, model: &[u8], name: &str, k_arena_size: usize) -> Result<Image, VerifyError> {
        let files = tinyq_export_c::generate(model, name, k_arena_size)?;
        let methods = resolver_methods(model)?;
        let app = self.app_dir("main", &[model, name.as_bytes(), &k_arena_size.to_le_bytes()]);
        for f in &files {
            write_if_changed(&app.join(&f.path), &f.contents)?;
        }
        let data = format!("{name}_model_data.cc");
        let sources: Vec<(&str, Vec<String>)> =
            vec![(data.as_str(), vec![]), ("main.cpp", vec![]), ("log_to_host.cc", vec![])];
        self.link_image(&app, &sources, &methods, "main", 0, model.len())
    }

    /// A runner that reads the model from a host file (the last word of its command line) and
    /// registers `methods` (`MicroMutableOpResolver` method names); `model_capacity` bytes of
    /// RAM hold the model.
    pub fn file_runner(
        &self,
        methods: &[&str],
        arena_capacity: usize,
        model_capacity: usize,
    ) -> Result<Image, VerifyError> {
        let cap = arena_capacity.div_ceil(16) * 16;
        let joined = methods.join(",");
        let app = self.app_dir("file", &[joined.as_bytes(), &cap.to_le_bytes(), &model_capacity.to_le_bytes()]);
        let mut config = format!(
            "// tinyq verify: a runner that reads the model from a host file.\n\
#include \"tensorflow/lite/micro/micro_mutable_op_resolver.h\"\n\n\
#define TINYQ_ARENA_CAPACITY {cap}\n\n\
namespace runner {{\n\
using OpResolver = tflite::MicroMutableOpResolver<{}>;\n\
inline TfLiteStatus RegisterOps(OpResolver& r) {{\n",
            methods.len()
        );
        for m in methods {
            config += &format!("  if (r.{m}() != kTfLiteOk) return kTfLiteError;\n");
        }
        config += &format!(
            "  return kTfLiteOk;\n}}\n\
alignas(16) inline uint8_t model_buffer[{model_capacity}];\n\
inline bool LoadModel(const char* path, const tflite::Model** m) {{\n\
\x20\x20if (path == nullptr || sh_read_file(path, model_buffer, sizeof model_buffer) <= 0) {{\n\
\x20\x20\x20\x20sh_print(\"error cannot read the model file\\n\");\n    return false;\n  }}\n\
\x20\x20*m = tflite::GetModel(model_buffer);\n  return true;\n}}\n\
}}  // namespace runner\n"
        );
        write_if_changed(&app.join("runner_config.h"), &config)?;
        let sources: Vec<(&str, Vec<String>)> = vec![("runner.cc", vec![])];
        self.link_image(&app, &sources, methods, "runner", cap, 0)
    }

    /// The QEMU plugin counting instructions (see [`plugin`]).
    pub fn plugin(&self) -> Result<PathBuf, VerifyError> {
        plugin(&self.tools, &self.cache_root)
    }
}

/// The QEMU plugin counting instructions, built with the host compiler into the cache.
pub fn plugin(tools: &Toolchain, cache_root: &Path) -> Result<PathBuf, VerifyError> {
    let src = HARNESS.iter().find(|(n, _)| *n == "insn_count.c").map(|(_, c)| *c).unwrap_or_default();
    let h = fnv1a(src.as_bytes(), FNV_START);
    let dir = cache_root.join(format!("qemu-plugin-{h:016x}"));
    let so = dir.join("libinsn_count.so");
    if so.is_file() {
        return Ok(so);
    }
    write_if_changed(&dir.join("insn_count.c"), src)?;
    let tmp = dir.join(format!("libinsn_count.{}.so", std::process::id()));
    let out = std::process::Command::new(&tools.host_cc)
        .args(["-O2", "-Wall", "-shared", "-fPIC", "-fvisibility=hidden", "-o"])
        .arg(&tmp)
        .arg(dir.join("insn_count.c"))
        .output()
        .map_err(|e| VerifyError::Tool(format!("{}: {e}", tools.host_cc.display())))?;
    if !out.status.success() {
        return Err(VerifyError::Compile {
            file: dir.join("insn_count.c"),
            log: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    std::fs::rename(&tmp, &so).map_err(|e| VerifyError::io(&so, e))?;
    Ok(so)
}

/// The `MicroMutableOpResolver` methods a model needs, in the order `tinyq export` registers them.
pub fn resolver_methods(model: &[u8]) -> Result<Vec<&'static str>, VerifyError> {
    let info = tinyq_export_c::inspect(model)?;
    let mut v = Vec::new();
    for op in &info.used_ops {
        let m = tinyq_export_c::resolver_method(op.code).ok_or_else(|| {
            tinyq_export_c::ExportError::UnsupportedOp(format!("{} (builtin code {})", op.name, op.code))
        })?;
        if !v.contains(&m) {
            v.push(m);
        }
    }
    Ok(v)
}
