//! Running an image on QEMU's `mps2-an386` (Cortex-M4) with semihosting and the
//! instruction-count plugin, and reading sizes from the ELF.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::toolchain::Toolchain;
use crate::{Image, VerifyError};

/// What one QEMU run printed and counted.
#[derive(Clone, Debug, Default)]
pub struct RunLog {
    /// The guest's exit status (QEMU's).
    pub status: i32,
    /// Lines printed over semihosting.
    pub lines: Vec<String>,
    /// The instruction total at each `tinyq_mark()`: `[allocate start, allocate end,
    /// invoke 0 start, invoke 0 end, ...]`.
    pub marks: Vec<u64>,
    /// Instructions executed by the whole run.
    pub total_instructions: u64,
    pub seconds: f64,
}

impl RunLog {
    /// The value of the first line `key N`.
    pub fn value(&self, key: &str) -> Option<i64> {
        self.lines.iter().find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
    }
    /// The guest's `error ...` line, if any.
    pub fn error(&self) -> Option<&str> {
        self.lines.iter().find_map(|l| l.strip_prefix("error "))
    }
    /// Instructions of AllocateTensors, then of each Invoke (each region's count includes the
    /// single instruction of the closing mark).
    pub fn regions(&self) -> Vec<u64> {
        self.marks.chunks_exact(2).map(|p| p[1].saturating_sub(p[0])).collect()
    }
}

/// Semihosting arguments: QEMU's option parser needs commas doubled.
fn escape(arg: &str) -> String {
    arg.replace(',', ",,")
}

/// Runs `image` with command-line words `args` (argv[1..]); `plugin` counts instructions.
pub fn run(
    tools: &Toolchain,
    image: &Image,
    args: &[String],
    plugin: Option<&Path>,
    timeout: Duration,
) -> Result<RunLog, VerifyError> {
    let start = Instant::now();
    let marks_path: PathBuf = image.elf.with_extension(format!("marks.{}.{}", std::process::id(), unique()));
    let mut cmd = Command::new(&tools.qemu);
    let mut semi = String::from("enable=on,target=native,chardev=semi,arg=image");
    for a in args {
        semi += &format!(",arg={}", escape(a));
    }
    cmd.args([
        "-M",
        "mps2-an386",
        "-display",
        "none",
        "-monitor",
        "none",
        "-serial",
        "null",
        "-chardev",
        "stdio,id=semi",
    ])
    .args(["-semihosting-config", &semi])
    .arg("-kernel")
    .arg(&image.elf);
    if let Some(p) = plugin {
        let mark = mark_address(tools, &image.elf)?;
        cmd.arg("-plugin").arg(format!(
            "{},mark={mark},out={}",
            escape(&p.display().to_string()),
            escape(&marks_path.display().to_string())
        ));
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| VerifyError::Tool(format!("{}: {e}", tools.qemu.display())))?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(s) = child.try_wait().map_err(|e| VerifyError::Tool(format!("qemu: {e}")))? {
            break s;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_file(&marks_path);
            return Err(VerifyError::Target(format!("QEMU did not finish within {} s", timeout.as_secs())));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let out = out_reader.join().unwrap_or_default();
    let err = err_reader.join().unwrap_or_default();
    let mut log = RunLog {
        status: status.code().unwrap_or(-1),
        lines: out.lines().map(|l| l.trim_end_matches('\r').to_string()).collect(),
        ..Default::default()
    };
    if let Ok(text) = std::fs::read_to_string(&marks_path) {
        for l in text.lines() {
            if let Some(t) = l.strip_prefix("total ") {
                log.total_instructions = t.trim().parse().unwrap_or(0);
            } else if let Ok(v) = l.trim().parse() {
                log.marks.push(v);
            }
        }
        let _ = std::fs::remove_file(&marks_path);
    }
    if log.status != 0 && log.lines.is_empty() && !err.trim().is_empty() {
        return Err(VerifyError::Target(format!("QEMU exited with status {}: {}", log.status, err.trim())));
    }
    log.seconds = start.elapsed().as_secs_f64();
    Ok(log)
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn mark_address(tools: &Toolchain, elf: &Path) -> Result<String, VerifyError> {
    let out = Command::new(&tools.nm)
        .arg(elf)
        .output()
        .map_err(|e| VerifyError::Tool(format!("{}: {e}", tools.nm.display())))?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| {
            let mut w = l.split_whitespace();
            let (addr, _, name) = (w.next()?, w.next()?, w.next()?);
            // Thumb code: the instruction is at the symbol's address with bit 0 clear.
            (name == "tinyq_mark").then(|| u64::from_str_radix(addr, 16).ok().map(|a| format!("0x{:x}", a & !1)))?
        })
        .ok_or_else(|| VerifyError::Tool(format!("{}: no tinyq_mark symbol", elf.display())))
}

/// (flash, static RAM) of an ELF: allocated sections in flash (everything but .data/.bss and
/// the stack/heap reservations) plus `.data`'s initialisers; `.data` + `.bss` in RAM.
pub fn section_sizes(tools: &Toolchain, elf: &Path) -> Result<(u64, u64), VerifyError> {
    let out = Command::new(&tools.size)
        .arg("-A")
        .arg(elf)
        .output()
        .map_err(|e| VerifyError::Tool(format!("{}: {e}", tools.size.display())))?;
    let (mut flash, mut ram) = (0u64, 0u64);
    for l in String::from_utf8_lossy(&out.stdout).lines() {
        let w: Vec<&str> = l.split_whitespace().collect();
        if w.len() < 3 || !w[0].starts_with('.') {
            continue;
        }
        let (Ok(size), Ok(addr)) = (w[1].parse::<u64>(), w[2].parse::<u64>()) else { continue };
        match w[0] {
            ".data" => {
                flash += size;
                ram += size;
            }
            ".bss" => ram += size,
            ".stack" | ".heap" => {}
            _ if addr < 0x2000_0000 && addr + size <= 0x0040_0000 && size > 0 && w[0] != ".comment" => flash += size,
            _ => {}
        }
    }
    Ok((flash, ram))
}

/// Whether `AllocateTensors` (and, with `invoke`, one `Invoke`) succeeds with exactly `size`
/// bytes; `model_arg` is the model file for a file runner. A run that does not finish within
/// `timeout` counts as a failure (TFLM can hang instead of failing with a tiny arena).
pub fn arena_fits(
    tools: &Toolchain,
    image: &Image,
    size: usize,
    invoke: bool,
    model_arg: Option<&str>,
    timeout: Duration,
) -> Result<bool, VerifyError> {
    let mut args = vec![if invoke { "check" } else { "alloc" }.to_string(), size.to_string()];
    args.extend(model_arg.map(String::from));
    match run(tools, image, &args, None, timeout) {
        Ok(log) => {
            if let Some(e) = log.error() {
                return Err(VerifyError::Target(e.to_string()));
            }
            Ok(log.value("arena_check_ok") == Some(1))
        }
        Err(VerifyError::Target(msg)) if msg.contains("did not finish") => Ok(false),
        Err(e) => Err(e),
    }
}

/// The smallest arena `AllocateTensors` accepts, by bisection over separate runs, starting
/// from `hint`. Sizes below 128 bytes are never tried.
pub fn minimum_arena(
    tools: &Toolchain,
    image: &Image,
    hint: usize,
    model_arg: Option<&str>,
    timeout: Duration,
) -> Result<usize, VerifyError> {
    const FLOOR: usize = 128;
    let fits = |n: usize| arena_fits(tools, image, n, false, model_arg, timeout);
    let mut hi = hint.clamp(FLOOR, image.arena_capacity.max(FLOOR));
    while !fits(hi)? {
        if hi >= image.arena_capacity {
            return Err(VerifyError::Target(format!(
                "AllocateTensors fails even with the whole {}-byte arena buffer",
                image.arena_capacity
            )));
        }
        hi = (hi * 2).min(image.arena_capacity);
    }
    // lo always fails: step down by eighths until a failing size is found (far below the
    // answer TFLM is likelier to hang than to fail).
    let mut lo = hi - hi / 8 - 1;
    while lo >= FLOOR && fits(lo)? {
        hi = lo;
        lo = hi - hi / 8 - 1;
    }
    lo = lo.max(FLOOR - 1);
    // Near the prediction the answer usually is the hint itself or just below: probe there first.
    if hi == hint && hint > FLOOR && !fits(hint - 1)? {
        return Ok(hint);
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if fits(mid)? {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Ok(hi)
}
