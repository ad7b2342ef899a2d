//! Slice, Split and Gather of a computed tensor on constant indices, as TFLite STRIDED_SLICE
//! (`Op::StridedSlice`): ONNX's starts/ends/axes/steps resolved against the shape
//! (<https://onnx.ai/onnx/operators/onnx__Slice.html>: negative indices count from the end, then
//! clamp to `[0, dim]`, or `[0, dim − 1]` and `[−1, dim − 1]` going backwards); Split as one
//! slice per output; Gather of one index as a slice whose axis is shrunk away, of an evenly spaced
//! run of indices as a strided slice. Constant inputs fold in `shape.rs`.

use tinyq_ir::op::StridedSlice;

use super::*;

/// One ONNX axis's slice: `(start, stop, step)`.
type AxisSlice = (i64, i64, i64);

/// Emits the slice of `x` given per ONNX axis (`None`: the whole axis), shrinking the ONNX axes
/// in `shrink`, and records it as `out`.
fn emit_slice(
    imp: &mut Importer,
    x: Value,
    per_axis: &[Option<AxisSlice>],
    shrink: &[usize],
    out: &str,
) -> Result<(), String> {
    let rank = per_axis.len();
    let (xi, perm) = match &x {
        Value::Tensor { id, layout: Layout::Perm(p) } => (*id, p.clone()),
        other => (imp.identity(other)?, identity(rank)),
    };
    let stored = imp.shape(&Value::Tensor { id: xi, layout: Layout::Perm(identity(rank)) });
    let mut p = StridedSlice { begin: vec![], end: vec![], strides: vec![], shrink_axis_mask: 0 };
    for (k, &a) in perm.iter().enumerate() {
        let (b, e, s) = per_axis[a].unwrap_or((0, stored[k] as i64, 1));
        p.begin.push(b);
        p.end.push(e);
        p.strides.push(s);
        if shrink.contains(&a) {
            p.shrink_axis_mask |= 1 << k;
        }
    }
    let id = imp.emit(Op::StridedSlice(p), vec![xi], out, None)?;
    let kept: Vec<usize> = perm.iter().copied().filter(|a| !shrink.contains(a)).collect();
    let mut sorted = kept.clone();
    sorted.sort_unstable();
    let layout = kept.iter().map(|a| sorted.iter().position(|s| s == a).expect("kept axis")).collect();
    imp.set(out, Value::Tensor { id, layout: Layout::Perm(layout) });
    Ok(())
}

/// ONNX's resolution of one axis's start and end for a dimension `d`.
fn resolve(start: i64, end: i64, step: i64, d: i64) -> Result<AxisSlice, String> {
    if step == 0 {
        return Err("Slice step 0".into());
    }
    let wrap = |v: i64| if v < 0 { v.saturating_add(d) } else { v };
    let (s, e) = (wrap(start), wrap(end));
    Ok(if step > 0 { (s.clamp(0, d), e.clamp(0, d), step) } else { (s.clamp(0, d - 1), e.clamp(-1, d - 1), step) })
}

/// Slice's starts, ends, axes (resolved against `rank`) and steps: inputs from opset 10,
/// attributes before; one of each per axis. The constant-folding Slice reads them here too.
pub(super) type SliceParams = (Vec<i64>, Vec<i64>, Vec<usize>, Vec<i64>);

pub(super) fn slice_params(imp: &Importer, c: &Ctx, rank: usize) -> Result<SliceParams, String> {
    let (starts, ends, axes, steps) = if imp.opset >= 10 {
        let get = |i| -> Result<Option<Vec<i64>>, String> { Ok(c.const_input(imp, i)?.map(|c| c.data.to_i64())) };
        (get(1)?.ok_or("missing starts")?, get(2)?.ok_or("missing ends")?, get(3)?, get(4)?)
    } else {
        (c.ints("starts").ok_or("missing starts")?, c.ints("ends").ok_or("missing ends")?, c.ints("axes"), None)
    };
    let axes: Vec<usize> = match axes {
        Some(a) => a.iter().map(|&x| constfold::axis(x, rank)).collect::<Result<_, _>>()?,
        None => (0..starts.len()).collect(),
    };
    let steps = steps.unwrap_or_else(|| vec![1; axes.len()]);
    if starts.len() != axes.len() || ends.len() != axes.len() || steps.len() != axes.len() {
        let n = (starts.len(), ends.len(), steps.len(), axes.len());
        return Err(format!("{} starts, {} ends, {} steps for {} axes", n.0, n.1, n.2, n.3));
    }
    Ok((starts, ends, axes, steps))
}

pub(super) fn slice_tensor(imp: &mut Importer, c: &Ctx) -> Result<(), String> {
    let x = c.input(imp, 0)?;
    let shape = imp.shape(&x);
    let rank = shape.len();
    let (starts, ends, axes, steps) = slice_params(imp, c, rank)?;
    let mut per_axis = vec![None; rank];
    for (k, &a) in axes.iter().enumerate() {
        per_axis[a] = Some(resolve(starts[k], ends[k], steps[k], shape[a] as i64)?);
    }
    emit_slice(imp, x, &per_axis, &[], c.out(0)?)
}

/// Gather of a computed tensor: one index (the axis disappears), or indices `i0, i0 + d, …`.
pub(super) fn gather_tensor(imp: &mut Importer, c: &Ctx) -> Result<(), String> {
    let x = c.input(imp, 0)?;
    let shape = imp.shape(&x);
    let idx = c.const_input(imp, 1)?.ok_or("missing indices")?;
    let axis = constfold::axis(c.int("axis", 0), shape.len())?;
    let d = shape[axis] as i64;
    let values: Vec<i64> = idx.data.to_i64().iter().map(|&v| if v < 0 { v + d } else { v }).collect();
    if let Some(v) = values.iter().find(|&&v| !(0..d).contains(&v)) {
        return Err(format!("index {v} is outside axis {axis} of size {d}"));
    }
    let mut per_axis = vec![None; shape.len()];
    match (idx.shape.len(), values.as_slice()) {
        (0, &[i]) => {
            per_axis[axis] = Some((i, i + 1, 1));
            emit_slice(imp, x, &per_axis, &[axis], c.out(0)?)
        }
        (1, &[first, ..]) => {
            let step = if values.len() > 1 { values[1] - first } else { 1 };
            if step == 0 || values.iter().enumerate().any(|(k, &v)| v != first + k as i64 * step) {
                return Err(format!("Gather of a computed tensor takes evenly spaced indices; got {values:?}"));
            }
            let last = first + (values.len() as i64 - 1) * step;
            per_axis[axis] = Some((first, last + step.signum(), step));
            emit_slice(imp, x, &per_axis, &[], c.out(0)?)
        }
        _ => Err(format!(
            "Gather of a computed tensor takes a scalar or 1-D index list; indices have shape {:?}",
            idx.shape
        )),
    }
}

/// Split into the sizes of the `split` input (opset 13+) or attribute, or into equal parts
/// (`num_outputs` from opset 18: the last part may be smaller).
pub(super) fn split(imp: &mut Importer, c: &Ctx) -> Result<(), String> {
    let x = c.input(imp, 0)?;
    if matches!(x, Value::Const(_)) {
        return Err("Split of a constant is not supported".into());
    }
    let shape = imp.shape(&x);
    let axis = constfold::axis(c.int("axis", 0), shape.len())?;
    let d = shape[axis] as i64;
    let n = c.node.output.len() as i64;
    let sizes = match if imp.opset >= 13 { c.const_input(imp, 1)?.map(|k| k.data.to_i64()) } else { c.ints("split") } {
        Some(s) => s,
        None => {
            let part = (d + n - 1) / n.max(1);
            (0..n).map(|k| part.min(d - k * part).max(0)).collect()
        }
    };
    if sizes.len() as i64 != n || sizes.iter().any(|&s| s < 0) || sizes.iter().sum::<i64>() != d {
        return Err(format!("split sizes {sizes:?} do not divide axis {axis} of size {d} into {n} outputs"));
    }
    let mut start = 0;
    for (k, &len) in sizes.iter().enumerate() {
        let mut per_axis = vec![None; shape.len()];
        per_axis[axis] = Some((start, start + len, 1));
        emit_slice(imp, x.clone(), &per_axis, &[], c.out(k)?)?;
        start += len;
    }
    Ok(())
}
