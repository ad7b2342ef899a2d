//! The structural check every `.tflite` file passes before anything reads it, in every command.
//!
//! planus checks each field as it is read (offsets and vtables inside the buffer, vector lengths,
//! UTF-8 strings, known enum values), but only the fields a reader asks for. This walks every
//! field of every table tinyq's schema knows — all subgraphs, tensors, operators, operator codes,
//! buffers and metadata, not only what the importer needs — so a file that is broken anywhere is
//! refused by `inspect` exactly as by `report` or `run`. It adds what the flatbuffer verifier LiteRT
//! runs and planus does not: alignment, table sizes and every vtable entry inside its table, for
//! fields tinyq does not read too ([`verify_layout`]), and index ranges (buffers
//! of tensors and metadata, operator codes, tensors of operators and subgraphs). The schema has no
//! recursive tables, so nesting depth is bounded by construction.

use crate::error::{malformed, TfliteError};
use crate::generated as tfl;

/// Checks the structure of `model`, read from `bytes`.
pub(crate) fn verify(bytes: &[u8], model: tfl::ModelRef<'_>) -> Result<(), TfliteError> {
    verify_layout(bytes).map_err(|msg| TfliteError::NotTflite(format!("invalid flatbuffer: {msg}")))?;
    model.description().map_err(malformed("Model.description"))?;
    let buffers = model.buffers().map_err(malformed("Model.buffers"))?;
    let n_buffers = buffers.map_or(0, |b| b.len());
    for (i, b) in buffers.into_iter().flatten().enumerate() {
        let what = format!("buffer {i}");
        let b = b.map_err(malformed(&what))?;
        b.data().map_err(malformed(&what))?;
        b.offset().map_err(malformed(&what))?;
        b.size().map_err(malformed(&what))?;
    }
    if let Some(mb) = model.metadata_buffer().map_err(malformed("Model.metadata_buffer"))? {
        for v in mb.iter() {
            in_range(v as i64, n_buffers, || "Model.metadata_buffer".into())?;
        }
    }
    for (i, m) in model.metadata().map_err(malformed("Model.metadata"))?.into_iter().flatten().enumerate() {
        let what = format!("metadata {i}");
        let m = m.map_err(malformed(&what))?;
        m.name().map_err(malformed(&what))?;
        in_range(m.buffer().map_err(malformed(&what))? as i64, n_buffers, || format!("{what} buffer"))?;
    }
    let codes = model.operator_codes().map_err(malformed("Model.operator_codes"))?;
    let mut names = Vec::new();
    for (i, c) in codes.into_iter().flatten().enumerate() {
        let what = format!("operator code {i}");
        let c = c.map_err(malformed(&what))?;
        let deprecated = c.deprecated_builtin_code().map_err(malformed(&what))?;
        let code = crate::codes::builtin_code(c.builtin_code().map_err(malformed(&what))?, deprecated);
        c.custom_code().map_err(malformed(&what))?;
        let version = c.version().map_err(malformed(&what))?;
        let name = crate::codes::op_name(code);
        if let Some(max) = crate::codes::max_version(code) {
            if !(1..=max).contains(&version) {
                return Err(TfliteError::NotTflite(format!(
                    "{what}: {name} version {version} does not exist (interpreters run versions 1 to {max})"
                )));
            }
        }
        names.push(name.to_string());
    }
    for (s, sg) in model.subgraphs().map_err(malformed("Model.subgraphs"))?.into_iter().flatten().enumerate() {
        let what = format!("subgraph {s}");
        let sg = sg.map_err(malformed(&what))?;
        sg.name().map_err(malformed(&what))?;
        let tensors = sg.tensors().map_err(malformed(&what))?;
        let n_tensors = tensors.map_or(0, |t| t.len());
        for (i, t) in tensors.into_iter().flatten().enumerate() {
            let what = format!("{what} tensor {i}");
            let t = t.map_err(malformed(&what))?;
            let name = t.name().map_err(malformed(&what))?.unwrap_or_default();
            tensor(t, &format!("{what} `{name}`:"), n_buffers)?;
        }
        let indices = |v: Option<planus::Vector<'_, i32>>, field: &str| -> Result<(), TfliteError> {
            for i in v.into_iter().flatten() {
                // -1 marks an absent optional operator input.
                if i != -1 {
                    in_range(i as i64, n_tensors, || format!("{what}: {field} tensor"))?;
                }
            }
            Ok(())
        };
        indices(sg.inputs().map_err(malformed(&what))?, "graph input")?;
        indices(sg.outputs().map_err(malformed(&what))?, "graph output")?;
        for (k, op) in sg.operators().map_err(malformed(&what))?.into_iter().flatten().enumerate() {
            let what = format!("{what} operator {k}");
            let op = op.map_err(malformed(&what))?;
            let code = op.opcode_index().map_err(malformed(&what))? as usize;
            let name = names.get(code).cloned().unwrap_or_else(|| "?".into());
            let op_err = |e: TfliteError| match e {
                TfliteError::NotTflite(msg) if s == 0 => TfliteError::Operator { index: k, op: name.clone(), msg },
                other => other,
            };
            in_range(code as i64, names.len(), || format!("{what}: opcode")).map_err(op_err)?;
            indices(op.inputs().map_err(malformed(&what))?, "input").map_err(op_err)?;
            indices(op.outputs().map_err(malformed(&what))?, "output").map_err(op_err)?;
            indices(op.intermediates().map_err(malformed(&what))?, "intermediate").map_err(op_err)?;
            // The option tables with vectors; the others hold only scalars.
            match op.builtin_options().map_err(malformed(&what))? {
                Some(tfl::BuiltinOptionsRef::ReshapeOptions(r)) => _ = r.new_shape().map_err(malformed(&what))?,
                Some(tfl::BuiltinOptionsRef::SqueezeOptions(q)) => _ = q.squeeze_dims().map_err(malformed(&what))?,
                _ => {}
            }
            op.custom_options().map_err(malformed(&what))?;
            op.custom_options_format().map_err(malformed(&what))?;
            op.mutating_variable_inputs().map_err(malformed(&what))?;
        }
    }
    Ok(())
}

fn tensor(t: tfl::TensorRef<'_>, what: &str, n_buffers: usize) -> Result<(), TfliteError> {
    t.shape().map_err(malformed(what))?;
    t.shape_signature().map_err(malformed(what))?;
    t.type_().map_err(malformed(what))?;
    t.name().map_err(malformed(what))?;
    t.is_variable().map_err(malformed(what))?;
    t.has_rank().map_err(malformed(what))?;
    t.sparsity().map_err(malformed(what))?;
    let b = t.buffer().map_err(malformed(what))?;
    // Buffer 0 is the empty sentinel; a model without buffers may still name it.
    if b != 0 {
        in_range(b as i64, n_buffers, || format!("{what} buffer"))?;
    }
    if let Some(q) = t.quantization().map_err(malformed(what))? {
        q.min().map_err(malformed(what))?;
        q.max().map_err(malformed(what))?;
        q.scale().map_err(malformed(what))?;
        q.zero_point().map_err(malformed(what))?;
        q.details().map_err(malformed(what))?;
        q.quantized_dimension().map_err(malformed(what))?;
    }
    Ok(())
}

fn in_range(i: i64, n: usize, what: impl FnOnce() -> String) -> Result<(), TfliteError> {
    if i < 0 || i as u64 >= n as u64 {
        return Err(TfliteError::NotTflite(format!("{} index {i} is out of range (0..{n})", what())));
    }
    Ok(())
}

/// What a field of a table holds, as far as the layout is concerned.
#[derive(Clone, Copy)]
enum Field {
    Scalar(usize),
    Str,
    Vector(usize),
    Table(&'static [Field]),
    Tables(&'static [Field]),
    /// A union value; its tag is the field just before it.
    Union(fn(u8) -> &'static [Field]),
}

use Field::{Scalar, Str, Table, Tables, Union, Vector};

/// A table whose fields tinyq does not model (sparsity, custom quantization, the options of
/// operators it does not read): only its vtable is checked.
const OPAQUE: &[Field] = &[];
const S1: Field = Scalar(1);
const S4: Field = Scalar(4);

/// The fields of each operator-options table tinyq's schema names, by union tag (the published
/// schema's numbering; see `schema/tflite_subset.fbs`). Enums are bytes, ints and floats 4 bytes.
fn builtin_options(tag: u8) -> &'static [Field] {
    match tag {
        1 => &[S1, S4, S4, S1, S4, S4, S1], // Conv2DOptions
        2 => &[S1, S4, S4, S4, S1, S4, S4], // DepthwiseConv2DOptions
        5 => &[S1, S4, S4, S4, S4, S1],     // Pool2DOptions
        8 => &[S1, S1, S1, S1, S1],         // FullyConnectedOptions
        9 | 75 => &[S4],                    // SoftmaxOptions, LeakyReluOptions
        10 => &[S4, S1],                    // ConcatenationOptions
        11 | 28 | 74 => &[S1, S1],          // Add/SubOptions, ResizeNearestNeighborOptions
        15 => &[S4, S4, S1, S1],            // ResizeBilinearOptions
        17 | 30 => &[Vector(4)],            // ReshapeOptions, SqueezeOptions
        21 | 27 | 55 => &[S1],              // MulOptions, ReducerOptions, ShapeOptions
        23 | 59 => &[S4, S4],               // GatherOptions, PackOptions
        32 => &[S4, S4, S4, S4, S4, S1],    // StridedSliceOptions
        _ => OPAQUE,
    }
}
const OPERATOR_CODE: &[Field] = &[Scalar(1), Str, Scalar(4), Scalar(4)];
const QUANTIZATION: &[Field] = &[Vector(4), Vector(4), Vector(4), Vector(8), Scalar(1), Table(OPAQUE), Scalar(4)];
const TENSOR: &[Field] =
    &[Vector(4), Scalar(1), Scalar(4), Str, Table(QUANTIZATION), Scalar(1), Table(OPAQUE), Vector(4), Scalar(1)];
const OPERATOR: &[Field] =
    &[Scalar(4), Vector(4), Vector(4), Scalar(1), Union(builtin_options), Vector(1), Scalar(1), Vector(1), Vector(4)];
const SUBGRAPH: &[Field] = &[Tables(TENSOR), Vector(4), Vector(4), Tables(OPERATOR), Str];
const BUFFER: &[Field] = &[Vector(1), Scalar(8), Scalar(8)];
const METADATA: &[Field] = &[Str, Scalar(4)];
const MODEL: &[Field] =
    &[Scalar(4), Tables(OPERATOR_CODE), Tables(SUBGRAPH), Str, Tables(BUFFER), Vector(4), Tables(METADATA)];

/// The layout rules of the flatbuffer verifier, over the raw bytes: every table, vtable, vector
/// and string inside the buffer and aligned, every vtable entry inside its table, every scalar
/// aligned to its size.
pub(crate) fn verify_layout(bytes: &[u8]) -> Result<(), String> {
    let root = read_u32(bytes, 0)? as usize;
    let mut budget = 1_000_000usize;
    table(bytes, root, MODEL, &mut budget)
}

fn read_u32(b: &[u8], at: usize) -> Result<u32, String> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or(format!("offset {at} is past the end"))
}

fn read_u16(b: &[u8], at: usize) -> Result<u16, String> {
    b.get(at..at + 2).map(|s| u16::from_le_bytes([s[0], s[1]])).ok_or(format!("offset {at} is past the end"))
}

fn aligned(at: usize, align: usize, what: &str) -> Result<(), String> {
    if !at.is_multiple_of(align) {
        return Err(format!("{what} at byte {at} is not {align}-byte aligned"));
    }
    Ok(())
}

/// The target of the uoffset stored at `at`.
fn follow(b: &[u8], at: usize) -> Result<usize, String> {
    aligned(at, 4, "an offset")?;
    at.checked_add(read_u32(b, at)? as usize)
        .filter(|&t| t < b.len())
        .ok_or(format!("offset at byte {at} points outside the file"))
}

fn table(b: &[u8], at: usize, fields: &[Field], budget: &mut usize) -> Result<(), String> {
    *budget = budget.checked_sub(1).ok_or("too many tables")?;
    aligned(at, 4, "a table")?;
    let soffset = read_u32(b, at)? as i32 as i64;
    let vt = usize::try_from(at as i64 - soffset)
        .map_err(|_| format!("the vtable of the table at byte {at} is outside the file"))?;
    aligned(vt, 2, "a vtable")?;
    let (vt_size, t_size) = (read_u16(b, vt)? as usize, read_u16(b, vt + 2)? as usize);
    if vt_size < 4 || !vt_size.is_multiple_of(2) || vt + vt_size > b.len() {
        return Err(format!("the vtable at byte {vt} has an invalid size {vt_size}"));
    }
    if t_size < 4 || at + t_size > b.len() {
        return Err(format!("the table at byte {at} has an invalid size {t_size}"));
    }
    for k in 0..(vt_size - 4) / 2 {
        let off = read_u16(b, vt + 4 + 2 * k)? as usize;
        if off == 0 {
            continue;
        }
        let field = fields.get(k).copied();
        let size = match field {
            Some(Scalar(s)) => s,
            Some(_) => 4,
            None => 1,
        };
        if off < 4 || off + size > t_size {
            return Err(format!("field {k} of the table at byte {at} lies outside the table"));
        }
        let pos = at + off;
        match field {
            None => {}
            Some(Scalar(s)) => aligned(pos, s, "a scalar field")?,
            Some(Str) => {
                let s = follow(b, pos)?;
                let n = read_u32(b, s)? as usize;
                if s + 4 + n >= b.len() || b[s + 4 + n] != 0 {
                    return Err(format!("the string at byte {s} is not terminated inside the file"));
                }
            }
            Some(Vector(elem)) => {
                vector(b, follow(b, pos)?, elem)?;
            }
            Some(Table(sub)) => table(b, follow(b, pos)?, sub, budget)?,
            Some(Union(members)) => {
                // The tag is field k - 1; an absent tag is NONE (0).
                let tag_off = if k == 0 { 0 } else { read_u16(b, vt + 4 + 2 * (k - 1))? as usize };
                let tag = if tag_off == 0 { 0 } else { b.get(at + tag_off).copied().unwrap_or(0) };
                table(b, follow(b, pos)?, members(tag), budget)?
            }
            Some(Tables(sub)) => {
                let v = follow(b, pos)?;
                let n = vector(b, v, 4)?;
                for i in 0..n {
                    table(b, follow(b, v + 4 + 4 * i)?, sub, budget)?;
                }
            }
        }
    }
    Ok(())
}

/// Checks a vector of `n` elements of `elem` bytes at `at`; returns `n`.
fn vector(b: &[u8], at: usize, elem: usize) -> Result<usize, String> {
    aligned(at, 4, "a vector")?;
    let n = read_u32(b, at)? as usize;
    aligned(at + 4, elem.min(8), "vector data")?;
    let end = n.checked_mul(elem).and_then(|bytes| bytes.checked_add(at + 4));
    if end.is_none_or(|e| e > b.len()) {
        return Err(format!("the vector at byte {at} ({n} elements) runs past the end of the file"));
    }
    Ok(n)
}
