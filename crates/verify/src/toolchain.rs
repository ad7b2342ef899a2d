//! The external programs `verify` runs, found on `PATH`, with an error naming the Debian
//! package when one is missing.

use std::path::PathBuf;
use std::process::Command;

use crate::VerifyError;

/// The cross compiler, binutils, QEMU and the host C compiler (for the QEMU plugin).
#[derive(Clone, Debug)]
pub struct Toolchain {
    pub cxx: PathBuf,
    pub cc: PathBuf,
    pub size: PathBuf,
    pub nm: PathBuf,
    pub qemu: PathBuf,
    pub host_cc: PathBuf,
    /// `arm-none-eabi-g++ --version`, first line (part of the object-cache key).
    pub cxx_version: String,
}

fn on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(program)).find(|p| p.is_file())
}

fn need(program: &str, package: &str) -> Result<PathBuf, VerifyError> {
    on_path(program).ok_or_else(|| VerifyError::MissingTool { program: program.into(), package: package.into() })
}

impl Toolchain {
    pub fn find() -> Result<Toolchain, VerifyError> {
        let cxx = need("arm-none-eabi-g++", "gcc-arm-none-eabi")?;
        let cc = need("arm-none-eabi-gcc", "gcc-arm-none-eabi")?;
        let size = need("arm-none-eabi-size", "binutils-arm-none-eabi")?;
        let nm = need("arm-none-eabi-nm", "binutils-arm-none-eabi")?;
        let qemu = need("qemu-system-arm", "qemu-system-arm")?;
        let host_cc = need("gcc", "gcc").or_else(|_| need("cc", "gcc"))?;
        // newlib-nano's specs file comes with libnewlib-arm-none-eabi.
        let specs = Command::new(&cc).arg("-print-file-name=nano.specs").output().ok();
        let specs_found =
            specs.map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()).is_absolute()).unwrap_or(false);
        if !specs_found {
            return Err(VerifyError::MissingTool {
                program: "newlib-nano (nano.specs)".into(),
                package: "libnewlib-arm-none-eabi".into(),
            });
        }
        if !compiles_cxx(&cxx) {
            return Err(VerifyError::MissingTool {
                program: "the C++ headers of arm-none-eabi-g++".into(),
                package: "libstdc++-arm-none-eabi-newlib".into(),
            });
        }
        let out = Command::new(&cxx)
            .arg("--version")
            .output()
            .map_err(|e| VerifyError::Tool(format!("{}: {e}", cxx.display())))?;
        let cxx_version = String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or_default().to_string();
        Ok(Toolchain { cxx, cc, size, nm, qemu, host_cc, cxx_version })
    }
}

/// Whether `cxx` finds the C++ standard headers TFLM includes.
fn compiles_cxx(cxx: &std::path::Path) -> bool {
    use std::io::Write;
    let child = Command::new(cxx)
        .args(["-mcpu=cortex-m4", "-mthumb", "-x", "c++", "-E", "-o", "/dev/null", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    let Ok(mut child) = child else { return false };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(b"#include <cstddef>\n#include <cstdint>\n");
    }
    child.wait().map(|s| s.success()).unwrap_or(false)
}
