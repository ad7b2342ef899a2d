//! Interpreter-free C export (`tinyq-cgen`): the model's prepared integer plan as plain C99.

use std::path::{Path, PathBuf};

use tinyq_cgen::{Footprint, Generated, KernelSet};

use crate::error::InFile;
use crate::TinyqError;

/// Generates the interpreter-free C of an INT8 model (`name` defaults to one derived from the
/// file name).
pub fn compile_c(model: &Path, name: Option<&str>, kernels: KernelSet) -> Result<Generated, TinyqError> {
    let name = match name {
        Some(n) => n.to_string(),
        None => tinyq_export_c::default_name(model).ok_or_else(|| {
            TinyqError::Model(format!("{}: cannot derive a C name from the file name; pass --name", model.display()))
        })?,
    };
    let m = crate::load_model(model)?;
    let plan = tinyq_int8::Int8Plan::with_kernels(&m.graph, tinyq_int8::Kernels::Reference).in_file(model)?;
    tinyq_cgen::generate(&plan, &name, kernels).in_file(model)
}

/// The footprint of the interpreter-free C of an INT8 model.
pub fn compile_footprint(model: &Path, kernels: KernelSet) -> Result<Footprint, TinyqError> {
    Ok(compile_c(model, Some("model"), kernels)?.footprint)
}

/// Writes the interpreter-free C of an INT8 model into `dir`; returns the files written and the
/// footprint.
pub fn export_c_no_interpreter(
    model: &Path,
    dir: &Path,
    name: Option<&str>,
    kernels: KernelSet,
) -> Result<(Vec<PathBuf>, Footprint), TinyqError> {
    let generated = compile_c(model, name, kernels)?;
    let marker = tinyq_export_c::GENERATED_MARKER;
    let mut files: Vec<tinyq_export_c::GeneratedFile> = generated
        .files
        .into_iter()
        .map(|(path, contents)| tinyq_export_c::GeneratedFile {
            path: PathBuf::from(path),
            contents: format!("/* {marker} (interpreter-free C). */\n{contents}"),
            user_editable: false,
        })
        .collect();
    files.extend(generated.examples.into_iter().map(|(path, contents)| tinyq_export_c::GeneratedFile {
        path: PathBuf::from(path),
        contents: format!(
            "/* {marker} (interpreter-free C): an example to adapt. Delete this line and `tinyq export` \
             will no longer replace the file. */\n{contents}"
        ),
        user_editable: true,
    }));
    std::fs::create_dir_all(dir).in_file(dir)?;
    let written = tinyq_export_c::write_dir(dir, &files).in_file(dir)?;
    Ok((written.written, generated.footprint))
}
