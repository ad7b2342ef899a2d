//! Compiling and linking for the Cortex-M4: a content-keyed object cache shared by every model,
//! parallel compile jobs, and the link with tinyq's own startup code and linker script.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Instant, UNIX_EPOCH};

use crate::toolchain::Toolchain;
use crate::tree::Tree;
use crate::VerifyError;

/// TFLM's `cortex_m_generic` flags for `cortex-m4+fp` (hard-float FPv4-SP), one optimisation level.
pub const CPU_FLAGS: &[&str] =
    &["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16", "-mlittle-endian"];
pub(crate) const COMMON_FLAGS: &[&str] = &[
    "-O2",
    "-funsigned-char",
    "-fomit-frame-pointer",
    "-fno-unwind-tables",
    "-fno-asynchronous-unwind-tables",
    "-ffunction-sections",
    "-fdata-sections",
    "-fmessage-length=0",
];
const CXX_FLAGS: &[&str] = &["-std=c++17", "-fno-rtti", "-fno-exceptions", "-fno-threadsafe-statics"];
const C_FLAGS: &[&str] = &["-std=c17"];

/// 64-bit FNV-1a, for cache keys (stable across runs and platforms).
pub fn fnv1a(data: &[u8], mut h: u64) -> u64 {
    for &b in data {
        h ^= b as u64;
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}
pub const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

/// How long the build took and what it did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct BuildStats {
    pub sources: usize,
    /// Objects compiled now (the rest came from the cache).
    pub compiled: usize,
    pub seconds: f64,
}

/// A compiler invocation: which driver and flags for a file.
pub struct Compiler<'a> {
    pub tools: &'a Toolchain,
    pub tree: &'a Tree,
    pub jobs: usize,
}

impl Compiler<'_> {
    fn flags_for(&self, file: &Path) -> (PathBuf, Vec<String>) {
        let is_c = file.extension().is_some_and(|e| e == "c");
        let mut f: Vec<String> = CPU_FLAGS.iter().chain(COMMON_FLAGS).map(|s| s.to_string()).collect();
        f.extend((if is_c { C_FLAGS } else { CXX_FLAGS }).iter().map(|s| s.to_string()));
        f.extend(self.tree.defines_and_includes());
        (if is_c { self.tools.cc.clone() } else { self.tools.cxx.clone() }, f)
    }

    /// The cache folder for this tree, compiler and flag set: the key covers every file of the
    /// tree (path, size, modification time), the compiler version and the flags.
    pub fn cache_dir(&self, cache_root: &Path) -> PathBuf {
        let mut h = fnv1a(self.tools.cxx_version.as_bytes(), FNV_START);
        let (_, flags) = self.flags_for(Path::new("x.cc"));
        h = fnv1a(flags.join(" ").as_bytes(), h);
        h = hash_tree(&self.tree.root, &self.tree.root, h);
        cache_root.join(format!("tflm-{}-{h:016x}", self.tree.kernels.name()))
    }

    /// Compiles `sources` (relative to the tree) into `obj_dir`, reusing objects already there.
    pub fn compile_tree(&self, sources: &[PathBuf], obj_dir: &Path) -> Result<(Vec<PathBuf>, BuildStats), VerifyError> {
        let jobs: Vec<(PathBuf, PathBuf)> =
            sources.iter().map(|s| (self.tree.root.join(s), obj_dir.join(s).with_extension("o"))).collect();
        let objects = jobs.iter().map(|(_, o)| o.clone()).collect();
        let stats = self.compile_all(&jobs, &[])?;
        Ok((objects, stats))
    }

    /// Compiles `(source, object)` pairs in parallel; skips objects that exist.
    pub fn compile_all(&self, jobs: &[(PathBuf, PathBuf)], extra: &[String]) -> Result<BuildStats, VerifyError> {
        let start = Instant::now();
        let todo: Vec<&(PathBuf, PathBuf)> = jobs.iter().filter(|(_, o)| !o.is_file()).collect();
        let next = AtomicUsize::new(0);
        let failure: Mutex<Option<VerifyError>> = Mutex::new(None);
        std::thread::scope(|scope| {
            for _ in 0..self.jobs.max(1) {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= todo.len() || failure.lock().map(|f| f.is_some()).unwrap_or(true) {
                        return;
                    }
                    let (src, obj) = todo[i];
                    if let Err(e) = self.compile_one(src, obj, extra) {
                        if let Ok(mut f) = failure.lock() {
                            f.get_or_insert(e);
                        }
                        return;
                    }
                });
            }
        });
        if let Some(e) = failure.into_inner().ok().flatten() {
            return Err(e);
        }
        Ok(BuildStats { sources: jobs.len(), compiled: todo.len(), seconds: start.elapsed().as_secs_f64() })
    }

    fn compile_one(&self, src: &Path, obj: &Path, extra: &[String]) -> Result<(), VerifyError> {
        let dir = obj.parent().expect("object paths have a folder");
        std::fs::create_dir_all(dir).map_err(|e| VerifyError::io(dir, e))?;
        let (driver, flags) = self.flags_for(src);
        // Written under a temporary name and renamed: a cached object is always complete.
        let tmp = obj.with_extension(format!("o.{}.tmp", std::process::id()));
        let out = Command::new(&driver)
            .args(&flags)
            .args(extra)
            .arg("-c")
            .arg(src)
            .arg("-o")
            .arg(&tmp)
            .output()
            .map_err(|e| VerifyError::Tool(format!("{}: {e}", driver.display())))?;
        if !out.status.success() {
            let _ = std::fs::remove_file(&tmp);
            return Err(VerifyError::Compile {
                file: src.to_path_buf(),
                log: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        std::fs::rename(&tmp, obj).map_err(|e| VerifyError::io(obj, e))
    }

    /// Links `objects` with the linker script into `elf` and writes `elf.map`.
    pub fn link(&self, objects: &[PathBuf], script: &Path, elf: &Path) -> Result<(), VerifyError> {
        let map = elf.with_extension("map");
        let out = Command::new(&self.tools.cxx)
            .args(CPU_FLAGS)
            .arg("-T")
            .arg(script)
            .args(["-nostartfiles", "--specs=nano.specs", "--specs=nosys.specs", "-Wl,--gc-sections"])
            .arg(format!("-Wl,-Map={}", map.display()))
            .args(objects)
            .args(["-lm", "-o"])
            .arg(elf)
            .output()
            .map_err(|e| VerifyError::Tool(format!("{}: {e}", self.tools.cxx.display())))?;
        if !out.status.success() {
            return Err(VerifyError::Link {
                elf: elf.to_path_buf(),
                log: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        Ok(())
    }
}

fn hash_tree(root: &Path, dir: &Path, mut h: u64) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return h };
    let mut entries: Vec<_> = entries.filter_map(|e| e.ok()).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        let Ok(meta) = e.metadata() else { continue };
        if meta.is_dir() {
            h = hash_tree(root, &p, h);
            continue;
        }
        let rel = p.strip_prefix(root).unwrap_or(&p);
        h = fnv1a(rel.to_string_lossy().as_bytes(), h);
        h = fnv1a(&meta.len().to_le_bytes(), h);
        let mtime = meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_secs());
        h = fnv1a(&mtime.to_le_bytes(), h);
    }
    h
}
