//! Outputs appear complete or not at all: every command writes into a uniquely named temporary
//! file (or folder) beside its target and renames it only after every step succeeded. Dropping
//! a [`Staged`] that was not committed removes the temporary, so every error path cleans up.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{bail, Context, Result};

/// One output being written: `tmp` now, `target` after [`Staged::commit`].
pub struct Staged {
    target: PathBuf,
    tmp: PathBuf,
    /// The flag that named the output (`-o`, `--html`, …), for messages.
    flag: &'static str,
    dir: bool,
    committed: bool,
}

impl Staged {
    /// A temporary file in `target`'s folder (which must exist).
    pub fn file(target: &Path, flag: &'static str) -> Result<Staged> {
        Self::new(target, flag, false)
    }

    /// A temporary folder beside `target` (whose parent must exist); created empty.
    pub fn dir(target: &Path, flag: &'static str) -> Result<Staged> {
        let s = Self::new(target, flag, true)?;
        std::fs::create_dir(&s.tmp)
            .with_context(|| format!("{flag} {}: cannot create a folder beside it", target.display()))?;
        Ok(s)
    }

    fn new(target: &Path, flag: &'static str, dir: bool) -> Result<Staged> {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        if !parent.is_dir() {
            bail!("{flag} {}: the folder {} does not exist", target.display(), parent.display());
        }
        let Some(name) = target.file_name() else {
            bail!("{flag} {}: not a file name", target.display());
        };
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
        let unique = format!("{}-{}-{nanos}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
        let tmp = parent.join(format!(".{}.{unique}.tinyq-tmp", name.to_string_lossy()));
        // Keep the extension: writers and readers look at it.
        let tmp = match target.extension() {
            Some(ext) if !dir => tmp.with_extension(format!("tinyq-tmp.{}", ext.to_string_lossy())),
            _ => tmp,
        };
        Ok(Staged { target: target.to_path_buf(), tmp, flag, dir, committed: false })
    }

    /// Where to write now.
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    pub fn target(&self) -> &Path {
        &self.target
    }

    /// The file name to quote in messages about this output.
    pub fn describe(&self) -> String {
        format!("{} {}", self.flag, self.target.display())
    }

    /// Writes `bytes` to the temporary file; an error names the target and the reason.
    pub fn write(&self, bytes: &[u8]) -> Result<()> {
        std::fs::write(&self.tmp, bytes).with_context(|| format!("{}: cannot write", self.describe()))
    }

    /// Renames the temporary over the target: the last step of a command.
    pub fn commit(mut self) -> Result<()> {
        if self.dir && self.target.exists() {
            bail!("{}: the folder already exists", self.describe());
        }
        std::fs::rename(&self.tmp, &self.target).with_context(|| format!("{}: cannot write", self.describe()))?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed {
            let _ = if self.dir { std::fs::remove_dir_all(&self.tmp) } else { std::fs::remove_file(&self.tmp) };
        }
    }
}

/// Commits every output, in order (all were fully written before the first rename).
pub fn commit_all(outputs: Vec<Staged>) -> Result<()> {
    for o in outputs {
        o.commit()?;
    }
    Ok(())
}
