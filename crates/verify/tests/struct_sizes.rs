//! The struct sizes tinyq's arena model uses, against `sizeof` of the real structs compiled from
//! the vendored TFLM trees: with arm-none-eabi-g++ for the Cortex-M4 (32-bit, short enums) and
//! with the host g++ (64-bit). Skips with a message when the compilers or ../shared are absent.

use std::path::{Path, PathBuf};
use std::process::Command;

use tinyq_arena::{struct_sizes, Kernels, PlanConfig, PointerWidth, StructSize};

fn shared_vendor() -> Option<PathBuf> {
    let base = std::env::var_os("TINYQ_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    let v = base.join("vendor");
    v.is_dir().then_some(v)
}

fn have(program: &str) -> bool {
    Command::new(program).arg("--version").output().is_ok_and(|o| o.status.success())
}

/// `sizeof` of each struct, read back from the assembly the compiler emits. Structs declared
/// in headers share one translation unit; those in a kernel's `.cc` (anonymous namespaces) get
/// one each.
fn measure(compiler: &[&str], tree: &Path, structs: &[StructSize], dir: &Path) -> Vec<usize> {
    let mut units: Vec<(String, Vec<usize>)> = Vec::new();
    let headers: Vec<usize> = (0..structs.len()).filter(|&k| structs[k].source.ends_with(".h")).collect();
    let mut text = String::new();
    for &k in &headers {
        text += &format!("#include \"{}\"\n", structs[k].source);
    }
    units.push((text, headers));
    for (k, st) in structs.iter().enumerate().filter(|(_, s)| !s.source.ends_with(".h")) {
        units.push((format!("#include \"{}\"\n", st.source), vec![k]));
    }
    let mut out = vec![0; structs.len()];
    for (u, (includes, members)) in units.iter().enumerate() {
        let mut text = includes.clone();
        for &k in members {
            text += &format!("extern \"C\" const unsigned tinyq_size_{k} = sizeof({});\n", structs[k].type_name);
        }
        let src = dir.join(format!("u{u}.cc"));
        let asm = dir.join(format!("u{u}.s"));
        std::fs::write(&src, text).unwrap();
        let t = tree.display();
        let o = Command::new(compiler[0])
            .args(&compiler[1..])
            .args(["-std=c++17", "-O1", "-S", "-fno-rtti", "-fno-exceptions", "-DTF_LITE_STATIC_MEMORY", "-DCMSIS_NN"])
            .args(
                [
                    "",
                    "/third_party",
                    "/third_party/gemmlowp",
                    "/third_party/flatbuffers/include",
                    "/third_party/ruy",
                    "/third_party/cmsis_nn",
                    "/third_party/cmsis_nn/Include",
                    "/third_party/cmsis",
                ]
                .map(|d| format!("-I{t}{d}")),
            )
            .arg(&src)
            .arg("-o")
            .arg(&asm)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}: {}", src.display(), String::from_utf8_lossy(&o.stderr));
        let text = std::fs::read_to_string(&asm).unwrap();
        for &k in members {
            let after = text.split(&format!("tinyq_size_{k}:")).nth(1).expect("the constant in the assembly");
            out[k] = after
                .lines()
                .find_map(|l| {
                    let l = l.trim();
                    l.strip_prefix(".word")
                        .or_else(|| l.strip_prefix(".long"))
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .expect("a .word/.long value");
        }
    }
    out
}

fn check(compiler: &[&str], tree: &Path, config: PlanConfig) {
    let structs = struct_sizes(&config);
    let dir = std::env::temp_dir().join(format!(
        "tinyq-sizes-{}-{}-{}",
        std::process::id(),
        compiler[0].replace('/', "_"),
        config.kernels.name()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let real = measure(compiler, tree, &structs, &dir);
    let wrong: Vec<String> = structs
        .iter()
        .zip(&real)
        .filter(|(s, r)| s.bytes != **r)
        .map(|(s, r)| format!("{} ({}): tinyq {} B, compiler {} B", s.type_name, s.source, s.bytes, r))
        .collect();
    let _ = std::fs::remove_dir_all(&dir);
    println!("{} structs checked with {} for {}", structs.len(), compiler[0], tree.display());
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn struct_sizes_equal_the_compiled_tflm_structs() {
    let Some(vendor) = shared_vendor() else {
        println!("skipped: ../shared/vendor not present (set TINYQ_SHARED)");
        return;
    };
    let arm = ["arm-none-eabi-g++", "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"];
    for (tree, kernels) in [("tflm-ref", Kernels::Reference), ("tflm-cmsis-nn", Kernels::CmsisNn)] {
        let tree = vendor.join(tree);
        if have("arm-none-eabi-g++") {
            check(&arm, &tree, PlanConfig::firmware(PointerWidth::Bits32).with_kernels(kernels));
        } else {
            println!("32-bit part skipped: arm-none-eabi-g++ not installed (Debian gcc-arm-none-eabi)");
        }
        if have("g++") && cfg!(target_pointer_width = "64") {
            check(&["g++"], &tree, PlanConfig::firmware(PointerWidth::Bits64).with_kernels(kernels));
        } else {
            println!("64-bit part skipped: no host g++ on a 64-bit host");
        }
    }
}
