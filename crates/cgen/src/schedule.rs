//! The steps the C runs, after the fusions, and their memory plan: a convolution with the pool
//! that alone reads it ([`band`]), residual blocks ([`residual`]), each other step alone. A
//! fusion is kept only where it gives a smaller arena (its bands cost a few instructions each).

use tinyq_int8::StepView;
use tinyq_ir::Graph;

use crate::memory::{self, MemoryPlan, Sharing, StepUse};
use crate::{band, cmsis, residual, steps, KernelSet};

/// A step that stands for several.
pub enum Fused<'a> {
    Pool(StepView<'a>, band::Band),
    Residual(residual::Residual<'a>),
}

pub struct Schedule<'a> {
    /// Per step: its first step in the folded list (for the node's name).
    pub first: Vec<usize>,
    /// Per step: the view (a fused step has its first step's kind, inputs, and the last one's
    /// output), what it fuses, and how CMSIS-NN runs it (sharing, its own scratch bytes).
    pub views: Vec<StepView<'a>>,
    pub fused: Vec<Option<Fused<'a>>>,
    pub cmsis: Vec<Option<(Sharing, usize)>>,
    pub mem: MemoryPlan,
}

fn copy_view<'a>(v: &StepView<'a>) -> StepView<'a> {
    StepView { kind: v.kind.clone(), inputs: v.inputs, output: v.output }
}

/// Plans `folded` (the steps after PAD folding).
pub fn plan<'a>(folded: &[StepView<'a>], g: &Graph, sizes: &[usize], kernels: KernelSet) -> Schedule<'a> {
    let pools = band::conv_pools(folded, g, sizes);
    let blocks = residual::find(folded, g);
    let n = folded.len();
    let (mut off, mut rows) = (vec![false; n], vec![None; n]);
    let mut best = build(folded, &Choice { pools: &pools, blocks: &blocks, off: &off, rows: &rows }, g, sizes, kernels);
    for i in 0..n {
        if blocks[i].is_none() && pools[i].is_none() {
            continue;
        }
        off[i] = true;
        let without =
            build(folded, &Choice { pools: &pools, blocks: &blocks, off: &off, rows: &rows }, g, sizes, kernels);
        if without.mem.arena_size <= best.mem.arena_size {
            best = without;
        } else {
            off[i] = false;
        }
    }
    // Taller bands for a fused pool (fewer calls), a row at a time while the arena does not grow.
    for j in 0..n {
        while let Some(s) = best.first.iter().position(|&f| f == j) {
            let Some(Fused::Pool(_, b)) = &best.fused[s] else { break };
            let now = b.rows;
            rows[j] = Some(now + 1);
            let taller =
                build(folded, &Choice { pools: &pools, blocks: &blocks, off: &off, rows: &rows }, g, sizes, kernels);
            let grew = matches!(&taller.fused[s], Some(Fused::Pool(_, t)) if t.rows > now);
            if grew && taller.mem.arena_size <= best.mem.arena_size {
                best = taller;
            } else {
                rows[j] = Some(now);
                break;
            }
        }
    }
    best
}

/// Which fusions a schedule makes: pools and residual blocks found, fusions turned off, and pool
/// rows per band chosen (each by the first step's index in the folded list).
struct Choice<'c> {
    pools: &'c [Option<usize>],
    blocks: &'c [Option<(usize, usize)>],
    off: &'c [bool],
    rows: &'c [Option<usize>],
}

fn build<'a>(
    folded: &[StepView<'a>],
    choice: &Choice<'_>,
    g: &Graph,
    sizes: &[usize],
    kernels: KernelSet,
) -> Schedule<'a> {
    let Choice { pools, blocks, off, rows } = *choice;
    let mut skip = vec![false; folded.len()];
    for (i, b) in blocks.iter().enumerate() {
        if let (Some((j, k)), false) = (b, off[i]) {
            (skip[*j], skip[*k]) = (true, true);
        }
    }
    for (j, k) in pools.iter().enumerate() {
        if let (Some(k), false) = (k, off[j]) {
            skip[*k] = true;
        }
    }
    let (mut first, mut views, mut fused) = (vec![], vec![], vec![]);
    for (j, v) in folded.iter().enumerate() {
        if skip[j] {
            continue;
        }
        let f = match (pools[j].filter(|_| !off[j]), blocks[j]) {
            (Some(k), _) => band::band_of(v, &folded[k], sizes).map(|b| {
                let b = rows[j].and_then(|r| band::with_rows(v, &folded[k], b, r)).unwrap_or(b);
                Fused::Pool(copy_view(&folded[k]), b)
            }),
            (None, Some((b, k))) if !off[j] => {
                let (tinyq_int8::StepKind::Conv2D(ca, _), tinyq_int8::StepKind::Conv2D(cb, _)) =
                    (&v.kind, &folded[b].kind)
                else {
                    unreachable!("residual::find pairs two convolutions")
                };
                residual::band(ca, cb).map(|band| {
                    Fused::Residual(residual::Residual { b: copy_view(&folded[b]), add: copy_view(&folded[k]), band })
                })
            }
            _ => None,
        };
        let output = match &f {
            Some(Fused::Pool(q, _)) => q.output,
            Some(Fused::Residual(r)) => r.add.output,
            None => v.output,
        };
        first.push(j);
        views.push(StepView { kind: v.kind.clone(), inputs: v.inputs, output });
        fused.push(f);
    }
    let cmsis: Vec<Option<(Sharing, usize)>> =
        views.iter().map(|v| if kernels == KernelSet::CmsisNn { cmsis::plan(v) } else { None }).collect();
    let uses: Vec<StepUse> = views
        .iter()
        .zip(&cmsis)
        .zip(&fused)
        .map(|((v, c), f)| {
            let (sharing, scratch) = match f {
                Some(Fused::Pool(q, b)) => {
                    let pool_scratch = cmsis::plan(q).filter(|_| c.is_some()).map_or(0, |p| p.1);
                    (Sharing::None, band::scratch(b, c.map_or(0, |c| c.1), pool_scratch))
                }
                Some(Fused::Residual(r)) => {
                    let s = residual::scratch(&r.band, residual_cmsis_scratch(c, r));
                    (Sharing::InPlace { input: 0, scratch: s }, s)
                }
                None => c.unwrap_or((steps::sharing(v, sizes), 0)),
            };
            StepUse { inputs: v.inputs.to_vec(), output: v.output, sharing, scratch }
        })
        .collect();
    let mem = memory::plan_fewest_overlaps(uses, sizes, g.inputs[0], g.outputs[0]);
    Schedule { first, views, fused, cmsis, mem }
}

/// CMSIS-NN's scratch for a fused residual block's two convolutions (one buffer, used in turn);
/// 0 with the portable kernels (`c` is `None`).
pub fn residual_cmsis_scratch(c: &Option<(Sharing, usize)>, r: &residual::Residual<'_>) -> usize {
    c.map_or(0, |(_, a)| a.max(cmsis::plan(&r.b).map_or(0, |p| p.1)))
}
