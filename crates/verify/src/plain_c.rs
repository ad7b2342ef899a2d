//! Interpreter-free C (`tinyq export --no-interpreter`) for the Cortex-M4: the generated sources
//! compiled with `arm-none-eabi-gcc -std=c99 -Wall -Wextra -Werror` and linked with tinyq's
//! startup code and the C runner (`harness/runner_c.c`), no TFLM involved.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::compile::{fnv1a, BuildStats, COMMON_FLAGS, CPU_FLAGS, FNV_START};
use crate::{write_if_changed, Image, Toolchain, VerifyError, HARNESS};

/// Flags the generated C must compile cleanly with.
pub const STRICT_C_FLAGS: &[&str] = &["-std=c99", "-Wall", "-Wextra", "-Werror"];

/// The runner linked with the generated `files` ((name, contents); `name` the model's C name),
/// with room for `samples_capacity` bytes of input samples, and with the CMSIS-NN library at
/// `cmsis_nn` (its folder with `Include/` and `Source/`) when the C calls it. `static_ram_bytes`
/// of the image excludes the sample buffer (harness memory, not the model's).
pub fn c_runner(
    tools: &Toolchain,
    cache_root: &Path,
    files: &[(String, String)],
    name: &str,
    samples_capacity: usize,
    cmsis_nn: Option<&Path>,
) -> Result<Image, VerifyError> {
    build(tools, cache_root, files, name, Program::Runner { samples_capacity }, cmsis_nn)
}

/// The exported example `main_c`, unchanged, linked with the generated `files`, tinyq's startup
/// code and a `tq_log` that prints over semihosting.
pub fn c_main(
    tools: &Toolchain,
    cache_root: &Path,
    files: &[(String, String)],
    name: &str,
    main_c: &str,
    cmsis_nn: Option<&Path>,
) -> Result<Image, VerifyError> {
    build(tools, cache_root, files, name, Program::Main(main_c), cmsis_nn)
}

enum Program<'a> {
    Runner { samples_capacity: usize },
    Main(&'a str),
}

fn build(
    tools: &Toolchain,
    cache_root: &Path,
    files: &[(String, String)],
    name: &str,
    program: Program<'_>,
    cmsis_nn: Option<&Path>,
) -> Result<Image, VerifyError> {
    let start = std::time::Instant::now();
    let (cap, main_c) = match program {
        Program::Runner { samples_capacity } => (samples_capacity.div_ceil(16) * 16, None),
        Program::Main(m) => (0, Some(m)),
    };
    let mut h = fnv1a(tools.cxx_version.as_bytes(), FNV_START);
    for (n, c) in files.iter().map(|(n, c)| (n.as_str(), c.as_str())).chain(HARNESS.iter().copied()) {
        h = fnv1a(n.as_bytes(), h);
        h = fnv1a(c.as_bytes(), h);
    }
    h = fnv1a(&cap.to_le_bytes(), h);
    if let Some(m) = main_c {
        h = fnv1a(m.as_bytes(), h);
    }
    if let Some(c) = cmsis_nn {
        h = fnv1a(c.display().to_string().as_bytes(), h);
    }
    let app = cache_root.join("plain-c").join(format!("{name}-{h:016x}"));
    for (n, c) in files.iter().map(|(n, c)| (n.as_str(), c.as_str())).chain(HARNESS.iter().copied()) {
        write_if_changed(&app.join(n), c)?;
    }
    let up = name.to_ascii_uppercase();
    let config = format!(
        "/* tinyq verify: the interpreter-free model `{name}` for the C runner. */\n\
         #include \"{name}.h\"\n#define TQ_INVOKE {name}_invoke\n#define TQ_INPUT_SIZE {up}_INPUT_SIZE\n\
         #define TQ_OUTPUT_SIZE {up}_OUTPUT_SIZE\n#define TQ_SAMPLES_CAPACITY {cap}\n"
    );
    write_if_changed(&app.join("runner_c_config.h"), &config)?;
    if let Some(m) = main_c {
        write_if_changed(&app.join("main.c"), m)?;
    }
    let elf = app.join(if main_c.is_some() { "main.elf" } else { "runner_c.elf" });
    let mut stats = BuildStats::default();
    if !elf.is_file() {
        let mut objects = Vec::new();
        let mut include = vec![app.clone()];
        if let Some(root) = cmsis_nn {
            let (objs, s) = cmsis_library(tools, cache_root, root)?;
            objects.extend(objs);
            stats.sources += s.sources;
            stats.compiled += s.compiled;
            include.push(root.join("Include"));
        }
        let harness: &[&str] = if main_c.is_some() {
            &["startup.c", "semihosting.c", "tq_log.c"]
        } else {
            &["startup.c", "semihosting.c", "runner_c.c"]
        };
        let example = main_c.map(|_| "main.c");
        let generated = files.iter().map(|(n, _)| n.as_str()).filter(|n| n.ends_with(".c")).chain(example);
        for f in harness.iter().copied().chain(generated) {
            // The generated C with the strict flags; tinyq's harness (GNU C) as verify builds it.
            let strict = !harness.contains(&f);
            let obj = app.join(f).with_extension("o");
            compile(tools, &app.join(f), &obj, &include, strict)?;
            stats.compiled += 1;
            stats.sources += 1;
            objects.push(obj);
        }
        let tmp = app.join(format!("runner_c.{}.elf", std::process::id()));
        link(tools, &objects, &app.join("cortex_m4.ld"), &tmp)?;
        std::fs::rename(&tmp, &elf).map_err(|e| VerifyError::io(&elf, e))?;
    }
    stats.seconds = start.elapsed().as_secs_f64();
    let (flash_bytes, ram) = crate::qemu::section_sizes(tools, &elf)?;
    Ok(Image {
        elf,
        arena_capacity: 0,
        model_bytes: 0,
        flash_bytes,
        static_ram_bytes: ram.saturating_sub(cap as u64),
        build: stats,
    })
}

/// CMSIS-NN's sources compiled once per library folder and compiler into the cache.
fn cmsis_library(tools: &Toolchain, cache_root: &Path, root: &Path) -> Result<(Vec<PathBuf>, BuildStats), VerifyError> {
    let mut sources = Vec::new();
    collect_c(&root.join("Source"), &mut sources);
    if sources.is_empty() {
        return Err(VerifyError::Tool(format!("{}: no CMSIS-NN sources under Source/", root.display())));
    }
    sources.sort();
    let mut h = fnv1a(tools.cxx_version.as_bytes(), FNV_START);
    h = fnv1a(root.display().to_string().as_bytes(), h);
    let dir = cache_root.join("plain-c").join(format!("cmsis-nn-{h:016x}"));
    let mut stats = BuildStats::default();
    let mut objects = Vec::new();
    for src in sources {
        let rel = src.strip_prefix(root).unwrap_or(&src);
        let obj = dir.join(rel).with_extension("o");
        if !obj.is_file() {
            if let Some(d) = obj.parent() {
                std::fs::create_dir_all(d).map_err(|e| VerifyError::io(d, e))?;
            }
            let tmp = obj.with_extension(format!("o.{}.tmp", std::process::id()));
            compile(tools, &src, &tmp, &[root.join("Include")], false)?;
            std::fs::rename(&tmp, &obj).map_err(|e| VerifyError::io(&obj, e))?;
            stats.compiled += 1;
        }
        stats.sources += 1;
        objects.push(obj);
    }
    Ok((objects, stats))
}

fn collect_c(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect_c(&p, out);
        } else if p.extension().is_some_and(|x| x == "c") {
            out.push(p);
        }
    }
}

fn compile(tools: &Toolchain, src: &Path, obj: &Path, include: &[PathBuf], strict: bool) -> Result<(), VerifyError> {
    let mut cmd = Command::new(&tools.cc);
    cmd.args(CPU_FLAGS).args(COMMON_FLAGS);
    if strict {
        cmd.args(STRICT_C_FLAGS);
    } else {
        cmd.arg("-std=gnu11");
    }
    for i in include {
        cmd.arg(format!("-I{}", i.display()));
    }
    let out = cmd
        .arg("-c")
        .arg(src)
        .arg("-o")
        .arg(obj)
        .output()
        .map_err(|e| VerifyError::Tool(format!("{}: {e}", tools.cc.display())))?;
    if !out.status.success() {
        let _ = std::fs::remove_file(obj);
        return Err(VerifyError::Compile {
            file: src.to_path_buf(),
            log: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(())
}

fn link(tools: &Toolchain, objects: &[PathBuf], script: &Path, elf: &Path) -> Result<(), VerifyError> {
    let out = Command::new(&tools.cc)
        .args(CPU_FLAGS)
        .arg("-T")
        .arg(script)
        .args(["-nostartfiles", "--specs=nano.specs", "--specs=nosys.specs", "-Wl,--gc-sections"])
        .arg(format!("-Wl,-Map={}", elf.with_extension("map").display()))
        .args(objects)
        .args(["-lm", "-o"])
        .arg(elf)
        .output()
        .map_err(|e| VerifyError::Tool(format!("{}: {e}", tools.cc.display())))?;
    if !out.status.success() {
        return Err(VerifyError::Link {
            elf: elf.to_path_buf(),
            log: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(())
}
