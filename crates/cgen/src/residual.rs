//! A residual block run in bands of rows: `X → CONV_2D a → CONV_2D b → ADD/SUB(X, ·)`, where
//! only b reads a's output, only the ADD reads b's, and X dies at the ADD. Unfused, X and a's
//! whole output are live together; fused, a band of b's output rows is computed from a sliding
//! window of a's rows (a ring of rows in scratch, each a-row computed once), added to X's rows
//! and written (in place, when the planner puts the output over X) where X's rows no later band
//! reads. Every output is computed from the same integers as the three steps alone: bit-exact.

use std::fmt::Write;

use tinyq_int8::{StepKind, StepView};
use tinyq_ir::Graph;
use tinyq_kernels::conv::ConvPerChannelParams;

use crate::memory::{Mode, ALIGN};
use crate::steps::{self, Emitted, Operands, Rows};

/// The fused steps b and the ADD, and the band.
pub struct Residual<'a> {
    pub b: StepView<'a>,
    pub add: StepView<'a>,
    pub band: Band,
}

#[derive(Clone, Copy, Debug)]
pub struct Band {
    /// Rows of b's output per band.
    pub rows: usize,
    /// Bytes of the window of a's rows, and of one band of b's rows.
    pub ring_a: usize,
    pub ring_b: usize,
}

/// Output pixels per band (up to a quarter of the image): each band repeats three calls' setup
/// and moves the rows of a its window keeps, so bands are a few rows tall.
const BAND_PIXELS: usize = 256;

fn align(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
}

/// For each step, the indices of b and the ADD when it is the first convolution of a fusable
/// block.
pub fn find(views: &[StepView<'_>], graph: &Graph) -> Vec<Option<(usize, usize)>> {
    let n = views.len();
    let readers = |t: usize| -> Vec<usize> { (0..n).filter(|&k| views[k].inputs.contains(&t)).collect() };
    let inner = |t: usize| !graph.outputs.contains(&t) && !graph.inputs.contains(&t);
    let mut found = vec![None; n];
    for (i, a) in views.iter().enumerate() {
        let StepKind::Conv2D(ca, _) = &a.kind else { continue };
        let x = a.inputs[0];
        let Some((j, k)) = k_of(views, &readers, a.output) else { continue };
        let StepKind::Conv2D(cb, _) = &views[j].kind else { continue };
        let add = &views[k];
        let (StepKind::Add { broadcast: false, .. } | StepKind::Sub { broadcast: false, .. }) = add.kind else {
            continue;
        };
        let mut x_readers = readers(x);
        x_readers.sort_unstable();
        let pair = add.inputs.len() == 2 && add.inputs.contains(&x) && add.inputs.contains(&views[j].output);
        if !pair || x_readers != [i, k] || !inner(x) || !inner(a.output) || !inner(views[j].output) {
            continue;
        }
        if band(ca, cb).is_some() && i < j && j < k {
            found[i] = Some((j, k));
        }
    }
    found
}

/// b's index and the ADD's when b alone reads `t` and the ADD alone reads b's output.
fn k_of(views: &[StepView<'_>], readers: &dyn Fn(usize) -> Vec<usize>, t: usize) -> Option<(usize, usize)> {
    let &[j] = &readers(t)[..] else { return None };
    let &[k] = &readers(views[j].output)[..] else { return None };
    (views[j].inputs[0] == t).then_some((j, k))
}

/// The band of a fusable pair of convolutions a → b on one image whose b output has a's input
/// shape; `None` when a band would overwrite rows of X a later band still reads.
pub fn band(ca: &ConvPerChannelParams, cb: &ConvPerChannelParams) -> Option<Band> {
    let (ra, rb) = (Rows::conv(ca)?, Rows::conv(cb)?);
    if cb.output_shape != ca.input_shape || ca.output_shape != cb.input_shape {
        return None;
    }
    if !ra.reads_every_row() || !rb.reads_every_row() {
        return None;
    }
    let (oha, ohb, ow) = (ra.out_rows, rb.out_rows, cb.output_shape[2]);
    // At most a quarter of the image, so the rings stay well below X itself.
    let rows = (1..=ohb).find(|r| r * ow >= BAND_PIXELS).unwrap_or(ohb).min(ohb / 4).max(1);
    let mut window = 0;
    for r0 in (0..ohb).step_by(rows) {
        let n = rows.min(ohb - r0);
        let (lo, hi) = a_rows(&ra, &rb, r0, n);
        window = window.max(hi - lo);
        // a's rows from `hi` on read X from row hi * stride - pad: past the rows written so far.
        if hi < oha && (hi * ra.stride).saturating_sub(ra.pad) < r0 + n {
            return None;
        }
    }
    Some(Band { rows, ring_a: window * ra.out_row_bytes, ring_b: rows * rb.out_row_bytes })
}

/// The rows of a the band of b's output rows `[r0, r0 + n)` needs: from the first one b reads,
/// up to the last one b reads or the last one that reads X's rows below `r0 + n` (which the band
/// overwrites), whichever is further.
fn a_rows(ra: &Rows, rb: &Rows, r0: usize, n: usize) -> (usize, usize) {
    let oha = ra.out_rows;
    let lo = (r0 * rb.stride).saturating_sub(rb.pad).min(oha);
    let read = ((r0 + n - 1) * rb.stride + rb.taps).saturating_sub(rb.pad);
    let free = (r0 + n - 1 + ra.pad) / ra.stride + 1;
    (lo, read.max(free).min(oha))
}

/// Scratch bytes: the window of a's rows, one band of b's, and CMSIS-NN's own buffer.
pub fn scratch(b: &Band, cmsis: usize) -> usize {
    align(b.ring_a) + align(b.ring_b) + cmsis
}

/// The C of the fused block `p`: a's, b's and the ADD's constants, then the loop over bands.
/// `cmsis`: CMSIS-NN's scratch bytes for the convolutions when CMSIS-NN runs them.
pub fn emit(a: &StepView<'_>, r: &Residual<'_>, p: &str, ops: &Operands, cmsis: Option<usize>) -> Emitted {
    let (StepKind::Conv2D(ca, wa), StepKind::Conv2D(cb, wb)) = (&a.kind, &r.b.kind) else {
        unreachable!("residual::find fused only two convolutions")
    };
    let sub = matches!(r.add.kind, StepKind::Sub { .. });
    let scratch = ops.scratch.clone().unwrap_or_default();
    let ring_a = format!("({scratch})");
    let ring_b = format!("({scratch} + {})", align(r.band.ring_a));
    let conv_scratch = format!("{scratch} + {}", align(r.band.ring_a) + align(r.band.ring_b));
    let (pa, pb, pc) = (format!("{p}a"), format!("{p}b"), format!("{p}c"));
    let mut e = Emitted::new();
    let sub_ops = |input: &str, output: &str| Operands {
        inputs: vec![input.to_string()],
        output: output.to_string(),
        scratch: None,
        input_len: vec![],
        output_len: 0,
        input_shapes: vec![],
        output_shape: vec![],
    };
    let portable_add = cmsis.is_none() || sub;
    for (v, q) in [(a, &pa), (&r.b, &pb)] {
        let d = match cmsis {
            Some(cs) => {
                let mut ce = Emitted::new();
                crate::cmsis::emit(v, q, &sub_ops("in", "out"), cs, None, &mut ce);
                ce
            }
            None => steps::emit(v, Mode::Separate { scratch: None }, q, &sub_ops("in", "out")),
        };
        e.defs += &d.defs;
        e.const_bytes += d.const_bytes;
        e.files.extend(d.files);
    }
    if portable_add {
        let mut add_ops = sub_ops("in", "out");
        add_ops.inputs.push("in".into());
        let d = steps::emit(&r.add, Mode::Separate { scratch: None }, &pc, &add_ops);
        e.defs += &d.defs;
    }
    let x = &ops.inputs[0];
    let y = &ops.output;
    let (ra, rb) = (Rows::conv(ca).expect("one image"), Rows::conv(cb).expect("one image"));
    let (oha, ohb, row_a, row_x) = (ra.out_rows, rb.out_rows, ra.out_row_bytes, rb.out_row_bytes);
    let (band, sb, pad, taps, a_stride, a_pad) = (r.band.rows, rb.stride, rb.pad, rb.taps, ra.stride, ra.pad);
    let x_rows = format!("{x} + r0 * {row_x}");
    let (in1, in2) = if r.add.inputs[0] == a.inputs[0] { (x_rows, ring_b.clone()) } else { (ring_b.clone(), x_rows) };
    let mut body = String::new();
    let _ = write!(
        body,
        "{{ int32_t r0, lo = 0, hi = 0; for (r0 = 0; r0 < {ohb}; r0 += {band}) {{ \
         const int32_t n = {ohb} - r0 < {band} ? {ohb} - r0 : {band}; \
         const int32_t f = r0 * {sb} - {pad}, e0 = (r0 + n - 1) * {sb} - {pad} + {taps}; \
         const int32_t e1 = (r0 + n - 1 + {a_pad}) / {a_stride} + 1, e = e0 > e1 ? e0 : e1; \
         const int32_t need_lo = f > 0 ? f : 0, need_hi = e < {oha} ? e : {oha}; \
         if (need_lo >= hi) {{ lo = hi = need_lo; }} else if (need_lo > lo) {{ \
         memmove({ring_a}, {ring_a} + (need_lo - lo) * {row_a}, (size_t)((hi - need_lo) * {row_a})); lo = need_lo; }} "
    );
    let len = format!("n * {row_x}");
    match cmsis {
        Some(cs) => {
            let ctx = if cs > 0 { format!("{{{conv_scratch}, {cs}}}") } else { "{NULL, 0}".into() };
            let call = |q: &str, c, w, input: &str, out: &str, rows: &str, from: &str| {
                let (f, filter, bias) = crate::cmsis::conv_operands(c, w, q);
                format!(
                    "{{ cmsis_nn_per_channel_quant_params q = {{(int32_t *){q}_m, (int32_t *){q}_s}}; \
                     {f}_from(&ctx, &{q}_cp, &q, &{q}_id, {input}, {from}, &{q}_fd, {filter}, &{q}_bd, {bias}, &{q}_od, {out}, {rows}); }} "
                )
            };
            let _ = write!(
                body,
                "{{ cmsis_nn_context ctx = {ctx}; if (need_hi > hi) {{ {}hi = need_hi; }} {}}} ",
                call(&pa, ca, wa, x, &format!("{ring_a} + (hi - lo) * {row_a}"), "hi, need_hi - hi", "0"),
                call(&pb, cb, wb, &ring_a, &ring_b, "r0, n", "lo")
            );
        }
        None => {
            let _ = write!(
                body,
                "if (need_hi > hi) {{ tq_conv_rows_s8(&{pa}_p, {x}, {ring_a} + (hi - lo) * {row_a}, hi, need_hi - hi); \
                 hi = need_hi; }} tq_conv_rows_from_s8(&{pb}_p, {ring_a}, lo, hi, {ring_b}, r0, n); "
            );
        }
    }
    let out = format!("{y} + r0 * {row_x}");
    if portable_add {
        let _ = write!(body, "tq_add_s8(&{pc}_p, {}, {in1}, {in2}, {out}, {len}); }} }}", sub as i32);
    } else {
        let StepKind::Add { params, .. } = &r.add.kind else { unreachable!("checked above") };
        let _ = write!(body, "{} }} }}", crate::cmsis::add_call(params, &in1, &in2, &out, &len));
    }
    e.line(body);
    e
}
