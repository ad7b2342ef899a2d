//! A CONV_2D fused with the MAX_POOL_2D / AVERAGE_POOL_2D that alone reads it: the convolution
//! is computed a band of output rows at a time into a small ring of rows (scratch in the arena),
//! and the pool reads that band and writes its output rows, so the convolution's whole output
//! never exists. This applies when the pool's windows do not overlap in height (filter height at
//! most the stride, no top padding): each pool output row then reads only the convolution rows of
//! its own band. Every output element is computed from the same integers as the unfused pair, so
//! the result is bit-exact.

use std::fmt::Write;

use tinyq_int8::{StepKind, StepView};
use tinyq_ir::Graph;
use tinyq_kernels::conv::ConvPerChannelParams;
use tinyq_kernels::pooling::PoolParams;

use crate::memory::{Mode, ALIGN};
use crate::steps::{self, Emitted, Operands};

/// How a fused convolution and pool run: pool output rows per band, and the bytes of the ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Band {
    /// Pool output rows per band.
    pub rows: usize,
    /// Convolution rows the pool reads at all (rows below them are never computed).
    pub conv_rows: usize,
    /// Bytes of the ring of convolution rows.
    pub ring: usize,
}

fn align(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
}

/// For each step, the index of the pool step fused into it (only for CONV_2D steps).
pub fn conv_pools(views: &[StepView<'_>], graph: &Graph, sizes: &[usize]) -> Vec<Option<usize>> {
    let n = views.len();
    let mut fused = vec![None; n];
    for (j, conv) in views.iter().enumerate() {
        if !matches!(conv.kind, StepKind::Conv2D(..)) {
            continue;
        }
        if graph.outputs.contains(&conv.output) {
            continue;
        }
        let readers: Vec<usize> = (0..n).filter(|&k| views[k].inputs.contains(&conv.output)).collect();
        let &[k] = &readers[..] else { continue };
        if views[k].inputs[0] == conv.output && band_of(conv, &views[k], sizes).is_some() {
            fused[j] = Some(k);
        }
    }
    fused
}

/// The band of a fusable pair, with a ring of at most `max(input, output bytes)` (at least one
/// band of one pool row). `None` when the pair cannot be fused.
pub fn band(c: &ConvPerChannelParams, p: &PoolParams, input_bytes: usize, output_bytes: usize) -> Option<Band> {
    let [n, h, _, _] = c.input_shape;
    let [_, oh, ow, oc] = c.output_shape;
    let [_, ph, pw, pc] = p.output_shape;
    let ([_, kh, _, _], s, dil, pad) = (c.filter_shape, c.stride_height, c.dilation_height, c.padding_values.height);
    if n != 1 || p.input_shape != c.output_shape || p.padding_values.height != 0 || p.filter_height > p.stride_height {
        return None;
    }
    if ph == 0 || pw == 0 || pc == 0 || ow == 0 {
        return None;
    }
    let conv_rows = (ph * p.stride_height).min(oh);
    // Every computed row must read at least one input row (the banded call sees only those).
    let reads = |r: usize| {
        let first = (r * s) as isize - pad as isize;
        first + (dil * (kh - 1)) as isize >= 0 && first < h as isize
    };
    if !reads(0) || !reads(conv_rows - 1) {
        return None;
    }
    let row = ow * oc;
    let cap = input_bytes.max(output_bytes);
    let rows = (cap / (p.stride_height * row).max(1)).clamp(1, ph);
    let ring = (rows * p.stride_height).min(conv_rows) * row;
    // One band holding the whole output saves nothing.
    (ring < oh * row).then_some(Band { rows, conv_rows, ring })
}

/// `b` with `rows` pool output rows per band (at most the pool's height), when its ring is still
/// smaller than the convolution's output.
pub fn with_rows(conv: &StepView<'_>, pool: &StepView<'_>, b: Band, rows: usize) -> Option<Band> {
    let (StepKind::Conv2D(c, _), StepKind::MaxPool(p) | StepKind::AveragePool(p)) = (&conv.kind, &pool.kind) else {
        return None;
    };
    let [_, oh, ow, oc] = c.output_shape;
    let rows = rows.clamp(1, p.output_shape[1]);
    let ring = (rows * p.stride_height).min(b.conv_rows) * ow * oc;
    (ring < oh * ow * oc).then_some(Band { rows, ring, ..b })
}

/// The band of the fused pair `conv` → `pool`, given their tensors' bytes.
pub fn band_of(conv: &StepView<'_>, pool: &StepView<'_>, sizes: &[usize]) -> Option<Band> {
    let (StepKind::Conv2D(c, _), StepKind::MaxPool(p) | StepKind::AveragePool(p)) = (&conv.kind, &pool.kind) else {
        return None;
    };
    band(c, p, sizes[conv.inputs[0]], sizes[pool.output])
}

/// Scratch bytes of the fused step: the ring, then the convolution's and the pool's own.
pub fn scratch(b: &Band, conv_scratch: usize, pool_scratch: usize) -> usize {
    align(b.ring) + align(conv_scratch) + pool_scratch
}

/// The C of a fused step `p`: the convolution's and the pool's constants, and a loop over bands.
/// `ops.output` is the pool's output, `ops.scratch` the fused scratch; `cmsis` gives the
/// convolution's and the pool's CMSIS-NN scratch bytes when CMSIS-NN runs them.
pub fn emit(
    conv: &StepView<'_>,
    pool: &StepView<'_>,
    b: &Band,
    p: &str,
    ops: &Operands,
    cmsis: Option<(usize, usize)>,
) -> Emitted {
    let (StepKind::Conv2D(c, w), StepKind::MaxPool(q) | StepKind::AveragePool(q)) = (&conv.kind, &pool.kind) else {
        unreachable!("band::conv_pools fused only a convolution and a pool")
    };
    let is_max = matches!(pool.kind, StepKind::MaxPool(_)) as i32;
    let scratch = ops.scratch.clone().unwrap_or_default();
    let ring = format!("({scratch})");
    let pq = format!("{p}_q");
    // Constants of both, from their own emitters; their whole-tensor calls are not used.
    let mut e = Emitted::new();
    let (mut conv_ops, mut pool_ops) = (sub_operands(ops), sub_operands(ops));
    conv_ops.output = ring.clone();
    pool_ops.inputs = vec![ring.clone()];
    match cmsis {
        Some((cs, ps)) => {
            let mut ce = Emitted::new();
            crate::cmsis::emit(conv, p, &conv_ops, cs, None, &mut ce);
            crate::cmsis::emit(pool, &pq, &pool_ops, ps, None, &mut ce);
            e.defs = ce.defs;
            e.const_bytes = ce.const_bytes;
            e.files = ce.files;
        }
        None => {
            let ce = steps::emit(conv, Mode::Separate { scratch: None }, p, &conv_ops);
            let pe = steps::emit(pool, Mode::Separate { scratch: None }, &pq, &pool_ops);
            e.defs = ce.defs + &pe.defs;
            e.const_bytes = ce.const_bytes + pe.const_bytes;
        }
    }
    let x = &ops.inputs[0];
    let y = &ops.output;
    let (s, ph, out_row) = (q.stride_height, q.output_shape[1], q.output_shape[2] * q.output_shape[3]);
    let (rows, conv_rows) = (b.rows, b.conv_rows);
    let mut body = String::new();
    let _ = write!(
        body,
        "{{ int32_t r; for (r = 0; r < {ph}; r += {rows}) {{ const int32_t n = {ph} - r < {rows} ? {ph} - r : {rows}; \
         const int32_t in_rows = n * {s} < {conv_rows} - r * {s} ? n * {s} : {conv_rows} - r * {s}; "
    );
    match cmsis {
        Some((cs, ps)) => {
            let conv_scratch = format!("{scratch} + {}", align(b.ring));
            let pool_scratch = format!("{scratch} + {}", align(b.ring) + align(cs));
            let ctx =
                |at: &str, bytes: usize| if bytes > 0 { format!("{{{at}, {bytes}}}") } else { "{NULL, 0}".into() };
            let (f, filter, bias) = crate::cmsis::conv_operands(c, w, p);
            let _ = write!(
                body,
                "cmsis_nn_context cc = {}, pc = {}; \
                 cmsis_nn_per_channel_quant_params q = {{(int32_t *){p}_m, (int32_t *){p}_s}}; \
                 {f}(&cc, &{p}_cp, &q, &{p}_id, {x}, &{p}_fd, {filter}, &{p}_bd, {bias}, &{p}_od, {ring}, r * {s}, in_rows); \
                 tq_cmsis_pool_rows(&pc, &{pq}_pp, &{pq}_id, {ring}, &{pq}_fd, &{pq}_od, {y} + r * {out_row}, in_rows, n, {is_max}); }} }}",
                ctx(&conv_scratch, cs),
                ctx(&pool_scratch, ps)
            );
        }
        None => {
            let _ = write!(
                body,
                "tq_conv_rows_s8(&{p}_p, {x}, {ring}, r * {s}, in_rows); \
                 tq_pool_rows_s8(&{pq}_p, {ring}, {y} + r * {out_row}, in_rows, n, {is_max}); }} }}"
            );
        }
    }
    e.line(body);
    e
}

fn sub_operands(ops: &Operands) -> Operands {
    Operands {
        inputs: ops.inputs.clone(),
        output: ops.output.clone(),
        scratch: None,
        input_len: ops.input_len.clone(),
        output_len: ops.output_len,
        input_shapes: ops.input_shapes.clone(),
        output_shape: ops.output_shape.clone(),
    }
}
