//! Import-time folding of shape subgraphs: SHAPE, STRIDED_SLICE, PACK, GATHER and CONCATENATION
//! whose inputs are all known (SHAPE only needs its input's static shape) become constants.
//!
//! A Keras model converted with a dynamic batch computes its Flatten target shape at run time
//! (`SHAPE → STRIDED_SLICE → PACK → RESHAPE`). With the batch fixed to 1 (the `shape` field; the
//! `-1` is only in `shape_signature`) every value of such a subgraph is known when the file is
//! read, so it folds to the RESHAPE's constant shape input and the ops disappear. Only integer
//! tensors are folded: these are index computations, not model numerics.
//!
//! Specs: the TFLite schema's option tables and `tensorflow/lite/kernels/strided_slice.cc`
//! (mask semantics), `gather.cc`, `pack.cc`.

use crate::codes::{CONCATENATION, GATHER, PACK, SHAPE, STRIDED_SLICE};
use crate::generated::BuiltinOptionsRef as OptRef;
use tinyq_ir::{numel, DType, Tensor, TensorData};

/// Does the fold step handle this builtin (when its inputs are known)?
pub(crate) fn is_shape_op(code: i32) -> bool {
    [SHAPE, STRIDED_SLICE, PACK, GATHER, CONCATENATION].contains(&code)
}

/// The constant output of a shape op, or `Ok(None)` when it cannot be folded (an input is
/// computed at run time, or the values are not integers). `out` is the declared output tensor,
/// whose dtype and shape the result takes.
pub(crate) fn fold(
    code: i32,
    opts: Option<OptRef<'_>>,
    ins: &[Option<&Tensor>],
    out: &Tensor,
) -> Result<Option<TensorData>, String> {
    let int = |t: &Tensor| matches!(t.dtype, DType::I32 | DType::I64);
    if !int(out) {
        return Ok(None);
    }
    let known = |k: usize| -> Option<(Vec<usize>, Vec<i64>)> {
        let t = ins.get(k).copied().flatten()?;
        t.data.as_ref().filter(|_| int(t)).map(|d| (t.shape.clone(), d.to_i64()))
    };
    let s = |r: planus::Result<i32>| r.map_err(|e| format!("malformed options: {e}"));
    let (shape, values) = match code {
        SHAPE => {
            let x = ins.first().copied().flatten().ok_or("input 0 is missing")?;
            (vec![x.shape.len()], x.shape.iter().map(|&d| d as i64).collect())
        }
        STRIDED_SLICE => {
            let Some(OptRef::StridedSliceOptions(o)) = opts else {
                return Err("the operator has no StridedSliceOptions".into());
            };
            let (Some(x), Some(b), Some(e), Some(st)) = (known(0), known(1), known(2), known(3)) else {
                return Ok(None);
            };
            if s(o.ellipsis_mask())? != 0 || s(o.new_axis_mask())? != 0 || o.offset().unwrap_or(false) {
                return Err("STRIDED_SLICE with an ellipsis, new axes or offset is not supported".into());
            }
            let masks = Masks { begin: s(o.begin_mask())?, end: s(o.end_mask())?, shrink: s(o.shrink_axis_mask())? };
            strided_slice(&x, &b.1, &e.1, &st.1, masks)?
        }
        PACK => {
            let Some(OptRef::PackOptions(o)) = opts else { return Err("the operator has no PackOptions".into()) };
            let parts: Option<Vec<_>> = (0..ins.len()).map(known).collect();
            let Some(parts) = parts else { return Ok(None) };
            let first = parts.first().ok_or("PACK without inputs")?.0.clone();
            if parts.iter().any(|p| p.0 != first) {
                return Err("PACK inputs differ in shape".into());
            }
            let axis = axis(s(o.axis())?, first.len() + 1)?;
            let mut shape = first.clone();
            shape.insert(axis, 1);
            let parts: Vec<_> = parts.into_iter().map(|(_, v)| (shape.clone(), v)).collect();
            concat(&parts, axis)?
        }
        CONCATENATION => {
            let Some(OptRef::ConcatenationOptions(o)) = opts else {
                return Err("the operator has no ConcatenationOptions".into());
            };
            let parts: Option<Vec<_>> = (0..ins.len()).map(known).collect();
            let Some(parts) = parts else { return Ok(None) };
            let rank = parts.first().ok_or("CONCATENATION without inputs")?.0.len();
            concat(&parts, axis(s(o.axis())?, rank)?)?
        }
        GATHER => {
            let ax = match opts {
                Some(OptRef::GatherOptions(o)) => {
                    if s(o.batch_dims())? != 0 {
                        return Err("GATHER with batch_dims is not supported".into());
                    }
                    s(o.axis())?
                }
                _ => 0,
            };
            let (Some(p), Some(i)) = (known(0), known(1)) else { return Ok(None) };
            gather(&p, &i, axis(ax, p.0.len())?)?
        }
        _ => return Ok(None),
    };
    if numel(&shape) != out.numel() {
        return Err(format!("folds to shape {shape:?}, the output tensor `{}` is {:?}", out.name, out.shape));
    }
    Ok(Some(match out.dtype {
        DType::I64 => TensorData::I64(values),
        _ => TensorData::I32(
            values
                .iter()
                .map(|&v| i32::try_from(v).map_err(|_| format!("{v} does not fit int32")))
                .collect::<Result<_, _>>()?,
        ),
    }))
}

fn axis(a: i32, rank: usize) -> Result<usize, String> {
    let r = rank as i64;
    let a = a as i64;
    if (-r..r).contains(&a) {
        Ok(((a + r) % r) as usize)
    } else {
        Err(format!("axis {a} is out of range for rank {rank}"))
    }
}

fn strides_of(shape: &[usize]) -> Vec<usize> {
    let mut st = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        st[i] = st[i + 1] * shape[i + 1];
    }
    st
}

/// Values at the cartesian product of per-axis index lists.
fn pick(shape: &[usize], values: &[i64], per_axis: &[Vec<usize>]) -> Vec<i64> {
    let st = strides_of(shape);
    let mut offsets = vec![0usize];
    for (a, idx) in per_axis.iter().enumerate() {
        let step = st[a];
        offsets = offsets.iter().flat_map(|&o| idx.iter().map(move |&i| o + i * step)).collect();
    }
    offsets.iter().map(|&o| values[o]).collect()
}

#[derive(Clone, Copy)]
struct Masks {
    begin: i32,
    end: i32,
    shrink: i32,
}

type Folded = (Vec<usize>, Vec<i64>);

fn strided_slice(
    x: &(Vec<usize>, Vec<i64>),
    begin: &[i64],
    end: &[i64],
    strides: &[i64],
    m: Masks,
) -> Result<Folded, String> {
    let (shape, values) = x;
    let n = begin.len();
    if end.len() != n || strides.len() != n || n > shape.len() {
        return Err(format!("begin {begin:?}, end {end:?} and strides {strides:?} do not fit shape {shape:?}"));
    }
    let mut per_axis = Vec::with_capacity(shape.len());
    let mut out_shape = Vec::new();
    for (a, &dim) in shape.iter().enumerate() {
        let d = dim as i64;
        if a >= n {
            per_axis.push((0..dim).collect::<Vec<_>>());
            out_shape.push(dim);
            continue;
        }
        let bit = |mask: i32| mask >> a & 1 == 1;
        let s = strides[a];
        if s == 0 {
            return Err("a stride of 0".into());
        }
        let norm = |v: i64| if v < 0 { v + d } else { v };
        if bit(m.shrink) {
            let b = norm(begin[a]);
            if !(0..d).contains(&b) {
                return Err(format!("index {} is out of range for dimension {dim}", begin[a]));
            }
            per_axis.push(vec![b as usize]);
            continue;
        }
        let (lo, hi) = if s > 0 { (0, d) } else { (-1, d - 1) };
        let b = if bit(m.begin) {
            if s > 0 {
                0
            } else {
                d - 1
            }
        } else {
            norm(begin[a]).clamp(lo, hi)
        };
        let e = if bit(m.end) {
            if s > 0 {
                d
            } else {
                -1
            }
        } else {
            norm(end[a]).clamp(lo, hi)
        };
        let mut idx = Vec::new();
        let mut i = b;
        while (s > 0 && i < e) || (s < 0 && i > e) {
            idx.push(i as usize);
            i += s;
        }
        out_shape.push(idx.len());
        per_axis.push(idx);
    }
    Ok((out_shape, pick(shape, values, &per_axis)))
}

fn concat(parts: &[(Vec<usize>, Vec<i64>)], axis: usize) -> Result<Folded, String> {
    let first = &parts[0].0;
    if parts
        .iter()
        .any(|(s, _)| s.len() != first.len() || s.iter().zip(first).enumerate().any(|(i, (a, b))| i != axis && a != b))
    {
        return Err(format!("inputs differ outside axis {axis}"));
    }
    let outer: usize = first[..axis].iter().product();
    let mut shape = first.clone();
    shape[axis] = parts.iter().map(|(s, _)| s[axis]).sum();
    let mut out = Vec::with_capacity(numel(&shape));
    for o in 0..outer {
        for (s, v) in parts {
            let block: usize = s[axis..].iter().product();
            out.extend_from_slice(&v[o * block..(o + 1) * block]);
        }
    }
    Ok((shape, out))
}

fn gather(params: &(Vec<usize>, Vec<i64>), indices: &(Vec<usize>, Vec<i64>), axis: usize) -> Result<Folded, String> {
    let (ps, pv) = params;
    let dim = ps[axis] as i64;
    let idx = indices
        .1
        .iter()
        .map(|&i| {
            let j = if i < 0 { i + dim } else { i };
            usize::try_from(j).ok().filter(|&j| (j as i64) < dim).ok_or(format!("index {i} is out of range for {dim}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut per_axis: Vec<Vec<usize>> = ps.iter().map(|&d| (0..d).collect()).collect();
    per_axis[axis] = idx;
    let values = pick(ps, pv, &per_axis);
    let shape = ps[..axis].iter().chain(&indices.0).chain(&ps[axis + 1..]).copied().collect();
    Ok((shape, values))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(shape: &[usize], values: &[i64]) -> (Vec<usize>, Vec<i64>) {
        (shape.to_vec(), values.to_vec())
    }

    #[test]
    fn strided_slice_follows_the_mask_rules() {
        let x = v(&[4], &[1, 28, 28, 3]);
        let none = Masks { begin: 0, end: 0, shrink: 0 };
        // Keras Flatten: the batch as a scalar
        assert_eq!(strided_slice(&x, &[0], &[1], &[1], Masks { shrink: 1, ..none }).unwrap(), (vec![], vec![1]));
        assert_eq!(strided_slice(&x, &[1], &[0], &[1], Masks { end: 1, ..none }).unwrap(), (vec![3], vec![28, 28, 3]));
        assert_eq!(
            strided_slice(&x, &[-1], &[0], &[-1], Masks { end: 1, ..none }).unwrap(),
            (vec![4], vec![3, 28, 28, 1])
        );
        assert_eq!(strided_slice(&x, &[0], &[10], &[2], none).unwrap(), (vec![2], vec![1, 28]));
        let m = v(&[2, 3], &[0, 1, 2, 3, 4, 5]);
        assert_eq!(strided_slice(&m, &[1, 0], &[2, 3], &[1, 2], none).unwrap(), (vec![1, 2], vec![3, 5]));
        assert!(strided_slice(&x, &[7], &[8], &[1], Masks { shrink: 1, ..none }).is_err());
    }

    #[test]
    fn concat_and_gather_match_numpy() {
        let a = v(&[2, 1], &[1, 2]);
        let b = v(&[2, 2], &[3, 4, 5, 6]);
        assert_eq!(concat(&[a, b], 1).unwrap(), (vec![2, 3], vec![1, 3, 4, 2, 5, 6]));
        let p = v(&[2, 3], &[0, 1, 2, 3, 4, 5]);
        assert_eq!(gather(&p, &v(&[2], &[2, -3]), 1).unwrap(), (vec![2, 2], vec![2, 0, 5, 3]));
        assert_eq!(gather(&p, &v(&[], &[1]), 0).unwrap(), (vec![3], vec![3, 4, 5]));
        assert!(gather(&p, &v(&[1], &[3]), 1).is_err());
    }
}
