//! Interpreter-free C for a quantized model: `tinyq export --c DIR --no-interpreter`.
//!
//! [`generate`] takes a prepared [`Int8Plan`] (every multiplier, shift, offset and activation range
//! already computed by the integer engine's prepare) and writes C99 with no heap, no C++ and no
//! flatbuffer: weights, biases and per-channel multipliers as `const` arrays, one static arena
//! whose offsets [`memory::plan`] chose, and `<name>_invoke(const int8_t *in, int8_t *out)`.
//! The kernels are a small C library (`src/c/`, only the files the model uses are written):
//! mirrors of TFLM's reference integer arithmetic, so the outputs equal the integer engine's
//! bit for bit.
//!
//! What this crate is not: it computes no quantization parameters (the plan has them), reads no
//! files and writes none (it returns the files' text; the caller stages them).

mod band;
mod cmsis;
mod examples;
mod fuse;
mod memory;
mod residual;
mod schedule;
mod steps;

use std::fmt::Write;

use tinyq_int8::{Int8Plan, StepKind, StepView};
use tinyq_ir::DType;

pub use memory::{plan as plan_memory, Mode, Place, Sharing, StepUse, ALIGN};

/// The C library, by file name.
const LIBRARY: &[(&str, &str)] = &[
    ("tq_kernels.h", include_str!("c/tq_kernels.h")),
    ("tq_conv.c", include_str!("c/tq_conv.c")),
    ("tq_dwconv.c", include_str!("c/tq_dwconv.c")),
    ("tq_fc.c", include_str!("c/tq_fc.c")),
    ("tq_add.c", include_str!("c/tq_add.c")),
    ("tq_mul.c", include_str!("c/tq_mul.c")),
    ("tq_pool.c", include_str!("c/tq_pool.c")),
    ("tq_mean.c", include_str!("c/tq_mean.c")),
    ("tq_softmax.c", include_str!("c/tq_softmax.c")),
    ("tq_table.c", include_str!("c/tq_table.c")),
    ("tq_copy.c", include_str!("c/tq_copy.c")),
    ("tq_cmsis.h", include_str!("c/tq_cmsis.h")),
    ("tq_cmsis.c", include_str!("c/tq_cmsis.c")),
    ("tq_pointwise.c", include_str!("c/tq_pointwise.c")),
];

#[derive(Debug, thiserror::Error)]
pub enum CgenError {
    #[error("node `{node}` ({op}): {what} has no interpreter-free C kernel yet; export it for TFLM instead (without --no-interpreter)")]
    Unsupported { node: String, op: &'static str, what: &'static str },
    #[error("--no-interpreter needs a model with one int8 input and one int8 output; this one has {inputs} input(s) and {outputs} output(s)")]
    Io { inputs: usize, outputs: usize },
    #[error("tensor `{name}` is {dtype}; --no-interpreter needs int8 model inputs and outputs")]
    IoType { name: String, dtype: &'static str },
    #[error("the model has no operators")]
    Empty,
    #[error("--name `{0}` is not a C identifier (letters, digits and `_`, not starting with a digit)")]
    Name(String),
}

/// Which kernels the generated C calls.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KernelSet {
    /// tinyq's C mirrors of TFLM's reference kernels, written into the folder.
    #[default]
    Portable,
    /// CMSIS-NN's functions (from the user's CMSIS-NN) for convolutions, depthwise convolutions,
    /// fully connected layers, elementwise ADD and pools; the portable kernels for the rest.
    CmsisNn,
}

/// What the generated C needs at run time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Footprint {
    /// The static arena (activations and in-place scratch), bytes.
    pub arena_bytes: usize,
    /// No placement of these buffers can be smaller than this.
    pub lower_bound: usize,
    /// The largest scratch one op uses (inside the arena).
    pub scratch_bytes: usize,
    /// Constant data (weights, biases, multipliers, tables, params), bytes.
    pub const_bytes: usize,
    /// Steps that write over their input, and views that cost nothing.
    pub in_place_steps: usize,
    pub views: usize,
}

/// The generated sources.
pub struct Generated {
    /// (file name, contents), for one folder.
    pub files: Vec<(String, String)>,
    /// The examples (`main.c`, `<name>.ino`): (file name, contents), meant to be edited.
    pub examples: Vec<(String, String)>,
    pub footprint: Footprint,
}

/// Generates `<name>.h`, `<name>.c`, the kernel files the model uses, and the examples `main.c`
/// and `<name>.ino`.
pub fn generate(plan: &Int8Plan, name: &str, kernels: KernelSet) -> Result<Generated, CgenError> {
    if name.is_empty()
        || name.starts_with(|c: char| c.is_ascii_digit())
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(CgenError::Name(name.into()));
    }
    let g = plan.graph();
    if g.inputs.len() != 1 || g.outputs.len() != 1 {
        return Err(CgenError::Io { inputs: g.inputs.len(), outputs: g.outputs.len() });
    }
    for &t in [g.inputs[0], g.outputs[0]].iter() {
        let t = g.tensor(t);
        if t.dtype != DType::I8 {
            return Err(CgenError::IoType { name: t.name.clone(), dtype: t.dtype.name() });
        }
    }
    let views = plan.steps();
    if views.is_empty() {
        return Err(CgenError::Empty);
    }
    for (node, v) in g.nodes.iter().zip(&views) {
        if let StepKind::Other(what) = v.kind {
            return Err(CgenError::Unsupported { node: node.name.clone(), op: node.op.name(), what });
        }
    }
    let sizes: Vec<usize> = g.tensors.iter().map(|t| t.numel() * t.dtype.size_bytes()).collect();
    let fusion = fuse::pads_into_convs(&views, g);
    let indexed = fuse::apply(&views, &fusion);
    let (order, folded): (Vec<usize>, Vec<StepView<'_>>) = indexed.into_iter().unzip();
    let sched = schedule::plan(&folded, g, &sizes, kernels);
    let schedule::Schedule { first, views, fused, cmsis, mem } = sched;
    let nodes: Vec<&tinyq_ir::Node> = first.iter().map(|&j| &g.nodes[order[j]]).collect();
    let (input, output) = (g.inputs[0], g.outputs[0]);

    let arena = format!("{name}_arena.bytes");
    let addr = |t: usize| match mem.places[t] {
        Some(Place::Input) => "in".to_string(),
        Some(Place::Output) => "out".to_string(),
        Some(Place::Arena(o)) => format!("({arena} + {o})"),
        None => unreachable!("every operand of a step is placed"),
    };
    let (mut defs, mut body, mut const_bytes) = (String::new(), String::new(), 0);
    let mut files: Vec<&str> = vec![];
    for (s, (v, node)) in views.iter().zip(nodes).enumerate() {
        let ops = steps::Operands {
            inputs: v.inputs.iter().map(|&t| addr(t)).collect(),
            output: addr(v.output),
            scratch: match mem.modes[s] {
                Mode::InPlace { scratch: Some(o) }
                | Mode::Separate { scratch: Some(o) }
                | Mode::Overlap { scratch: Some(o), .. } => Some(format!("({arena} + {o})")),
                _ => None,
            },
            input_len: v.inputs.iter().map(|&t| g.tensor(t).numel()).collect(),
            output_len: g.tensor(v.output).numel(),
            input_shapes: v.inputs.iter().map(|&t| g.tensor(t).shape.clone()).collect(),
            output_shape: g.tensor(v.output).shape.clone(),
        };
        let prefix = format!("{name}_{s}");
        let e = match (&fused[s], cmsis[s]) {
            (Some(schedule::Fused::Residual(r)), c) => {
                let portable_add = c.is_none() || !matches!(r.add.kind, StepKind::Add { .. });
                for (f, used) in [("tq_cmsis.c", c.is_some()), ("tq_add.c", portable_add)] {
                    if used && !files.contains(&f) {
                        files.push(f);
                    }
                }
                let cs = c.map(|_| schedule::residual_cmsis_scratch(&c, r));
                residual::emit(v, r, &prefix, &ops, cs)
            }
            (Some(schedule::Fused::Pool(q, b)), c) => {
                let cmsis_scratch = c.map(|(_, cs)| (cs, cmsis::plan(q).map_or(0, |p| p.1)));
                if cmsis_scratch.is_some() && !files.contains(&"tq_cmsis.c") {
                    files.push("tq_cmsis.c");
                }
                if cmsis_scratch.is_none() && !files.contains(&"tq_pool.c") {
                    files.push("tq_pool.c");
                }
                band::emit(v, q, b, &prefix, &ops, cmsis_scratch)
            }
            (None, Some((_, scratch))) => {
                let mut e = steps::Emitted::new();
                let banded = match mem.modes[s] {
                    Mode::Overlap { reverse, .. } => Some(reverse),
                    _ => None,
                };
                if banded.is_some() && !files.contains(&"tq_cmsis.c") {
                    files.push("tq_cmsis.c");
                }
                cmsis::emit(v, &prefix, &ops, scratch, banded, &mut e);
                e
            }
            (None, None) => steps::emit(v, mem.modes[s], &prefix, &ops),
        };
        let _ = writeln!(defs, "/* {s}: {} `{}` */\n{}", node.op.name(), c_comment(&node.name), e.defs);
        let _ = write!(body, "  /* {s}: {} */\n{}", node.op.name(), e.body);
        const_bytes += e.const_bytes;
        for f in &e.files {
            if !files.contains(f) {
                files.push(f);
            }
        }
        if let Some(f) = steps::kernel_file(&v.kind).filter(|_| cmsis[s].is_none()) {
            if !files.contains(&f) {
                files.push(f);
            }
        }
    }
    files.sort_unstable();
    let footprint = Footprint {
        arena_bytes: mem.arena_size,
        lower_bound: mem.lower_bound,
        scratch_bytes: mem.scratch_peak,
        const_bytes,
        in_place_steps: mem.modes.iter().filter(|m| matches!(m, Mode::InPlace { .. })).count(),
        views: mem.modes.iter().filter(|m| **m == Mode::Alias).count(),
    };
    let (it, ot) = (g.tensor(input), g.tensor(output));
    let mut out = vec![
        (format!("{name}.h"), header(name, &footprint, it, ot)),
        (
            format!("{name}.c"),
            source(&Source { name, defs: &defs, body: &body, input: it, output: ot, kernels }, &footprint),
        ),
    ];
    for (f, text) in LIBRARY {
        let header_of_used = *f == "tq_cmsis.h" && kernels == KernelSet::CmsisNn;
        if *f == "tq_kernels.h" || header_of_used || files.contains(f) {
            out.push((f.to_string(), text.to_string()));
        }
    }
    let examples =
        vec![("main.c".to_string(), examples::main_c(name)), (format!("{name}.ino"), examples::sketch(name))];
    Ok(Generated { files: out, examples, footprint })
}

fn c_comment(s: &str) -> String {
    let s: String = s.chars().filter(|c| c.is_ascii_graphic() || *c == ' ').take(80).collect();
    s.replace("*/", "* /")
}

fn qparams(t: &tinyq_ir::Tensor) -> (f32, i32) {
    t.qparams.as_ref().and_then(|q| Some((*q.scale.first()?, *q.zero_point.first()?))).unwrap_or((1.0, 0))
}

fn header(name: &str, f: &Footprint, it: &tinyq_ir::Tensor, ot: &tinyq_ir::Tensor) -> String {
    let up = name.to_ascii_uppercase();
    let mut h = String::new();
    let _ = write!(
        h,
        "/* {name}: the model as plain C99, generated by tinyq (no interpreter, no heap).\n \
         * Call {name}_invoke(in, out) with {} int8 input values and room for {} int8 outputs. */\n\
         #ifndef {up}_H\n#define {up}_H\n\n#include <stdint.h>\n\n#ifdef __cplusplus\nextern \"C\" {{\n#endif\n\n\
         /* Bytes of the static activation arena (buffers and scratch), planned at export. */\n\
         #define {up}_ARENA_SIZE {}\n#define {up}_INPUT_SIZE {}\n#define {up}_OUTPUT_SIZE {}\n\n\
         void {name}_invoke(const int8_t *in, int8_t *out);\n\n",
        it.numel(),
        ot.numel(),
        f.arena_bytes,
        it.numel(),
        ot.numel()
    );
    for side in ["input", "output"] {
        let _ = write!(
            h,
            "int32_t {name}_{side}_rank(void);\nconst int32_t *{name}_{side}_shape(void);\n\
             float {name}_{side}_scale(void);\nint32_t {name}_{side}_zero_point(void);\n"
        );
    }
    let _ = write!(h, "\n#ifdef __cplusplus\n}}\n#endif\n\n#endif\n");
    h
}

/// The model's source: constants, arena, `invoke`, accessors.
struct Source<'a> {
    name: &'a str,
    defs: &'a str,
    body: &'a str,
    input: &'a tinyq_ir::Tensor,
    output: &'a tinyq_ir::Tensor,
    kernels: KernelSet,
}

fn source(src: &Source<'_>, f: &Footprint) -> String {
    let Source { name, defs, body, input: it, output: ot, kernels } = *src;
    let up = name.to_ascii_uppercase();
    let mut c = String::new();
    let cmsis = if kernels == KernelSet::CmsisNn { "#include \"tq_cmsis.h\"\n" } else { "" };
    let _ = write!(
        c,
        "/* Generated by tinyq. Arena {} B (lower bound {} B), constants {} B. */\n\
         #include <stddef.h>\n#include <string.h>\n#include \"{name}.h\"\n#include \"tq_kernels.h\"\n{cmsis}\n\
         {defs}",
        f.arena_bytes, f.lower_bound, f.const_bytes
    );
    if f.arena_bytes > 0 {
        let arena =
            format!("static union {{\n  int32_t align;\n  int8_t bytes[{up}_ARENA_SIZE];\n}} {name}_arena;\n\n");
        c.insert_str(c.find("/* 0:").unwrap_or(c.len()), &arena);
    }
    let _ = write!(c, "void {name}_invoke(const int8_t *in, int8_t *out) {{\n  (void)in;\n  (void)out;\n{body}}}\n\n");
    for (side, t) in [("input", it), ("output", ot)] {
        let dims: Vec<String> = t.shape.iter().map(|d| d.to_string()).collect();
        let (scale, zp) = qparams(t);
        let _ = write!(
            c,
            "static const int32_t {name}_{side}_dims[{}] = {{{}}};\n\
             int32_t {name}_{side}_rank(void) {{ return {}; }}\n\
             const int32_t *{name}_{side}_shape(void) {{ return {name}_{side}_dims; }}\n\
             float {name}_{side}_scale(void) {{ return {scale:e}f; }}\n\
             int32_t {name}_{side}_zero_point(void) {{ return {zp}; }}\n\n",
            dims.len().max(1),
            if dims.is_empty() { "1".into() } else { dims.join(", ") },
            t.shape.len()
        );
    }
    c
}
