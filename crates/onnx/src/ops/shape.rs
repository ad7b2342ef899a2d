//! Constants, shapes and data movement: Identity, Constant(OfShape), Shape, Gather, Slice, Cast,
//! Reshape, Flatten, (Un)Squeeze, Transpose, Concat.

use super::*;

pub(super) fn identity_op(imp: &mut Importer, c: &Ctx) -> Result<(), String> {
    let v = c.input(imp, 0)?;
    imp.set(c.out(0)?, v);
    Ok(())
}

pub(super) fn constant(imp: &mut Importer, c: &Ctx) -> Result<(), String> {
    let a = c.node.attribute.first().ok_or("Constant without a value")?;
    let v = match a.name.as_str() {
        "value" => constfold::from_proto(a.t.as_ref().ok_or("value is not a tensor")?)?,
        "value_float" => Const::f32(vec![], vec![a.f]),
        "value_floats" => Const::f32(vec![a.floats.len()], a.floats.clone()),
        "value_int" => Const { shape: vec![], data: TensorData::I64(vec![a.i]) },
        "value_ints" => Const::i64s(a.ints.clone()),
        other => return Err(format!("Constant attribute `{other}` is not supported")),
    };
    imp.set(c.out(0)?, Value::Const(v));
    Ok(())
}

pub(super) fn constant_of_shape(imp: &mut Importer, c: &Ctx) -> Result<(), String> {
    let shape = ints_to_usize(&c.const_input(imp, 0)?.ok_or("missing shape")?.data.to_i64(), "shape")?;
    let fill = match c.attr("value").and_then(|a| a.t.as_ref()) {
        Some(t) => constfold::from_proto(t)?,
        None => Const::f32(vec![1], vec![0.0]),
    };
    let n = tinyq_ir::size::tensor_numel(&shape, fill.data.dtype().size_bytes())?;
    let out = Const { data: fill.data.gather(&vec![0; n]), shape };
    imp.set(c.out(0)?, Value::Const(out));
    Ok(())
}

pub(super) fn shape(imp: &mut Importer, c: &Ctx) -> Result<(), String> {
    let v = c.input(imp, 0)?;
    let s: Vec<i64> = imp.shape(&v).iter().map(|&d| d as i64).collect();
    let r = s.len() as i64;
    let clampi = |x: i64| (if x < 0 { x + r } else { x }).clamp(0, r) as usize;
    let start = clampi(c.int("start", 0));
    let end = clampi(c.int("end", r));
    let out = s[start..end.max(start)].to_vec();
    imp.set(c.out(0)?, Value::Const(Const::i64s(out)));
    Ok(())
}

pub(super) fn gather(imp: &mut Importer, c: &Ctx) -> Result<(), String> {
    if !c.all_const(imp) {
        return super::slice::gather_tensor(imp, c);
    }
    let data = c.const_input(imp, 0)?.ok_or("missing data")?;
    let idx = c.const_input(imp, 1)?.ok_or("missing indices")?;
    let axis = constfold::axis(c.int("axis", 0), data.shape.len())?;
    let out = constfold::gather(&data, &idx, axis)?;
    imp.set(c.out(0)?, Value::Const(out));
    Ok(())
}

pub(super) fn slice(imp: &mut Importer, c: &Ctx) -> Result<(), String> {
    if !c.all_const(imp) {
        return super::slice::slice_tensor(imp, c);
    }
    let data = c.const_input(imp, 0)?.ok_or("missing data")?;
    let (starts, ends, axes, steps) = super::slice::slice_params(imp, c, data.shape.len())?;
    let out = constfold::slice(&data, &starts, &ends, &axes, &steps)?;
    imp.set(c.out(0)?, Value::Const(out));
    Ok(())
}

pub(super) fn cast(imp: &mut Importer, c: &Ctx) -> Result<(), String> {
    let to = c.int("to", 1) as i32;
    match c.input(imp, 0)? {
        Value::Const(k) => {
            let data = match to {
                1 | 10 | 11 => TensorData::F32(k.data.to_f32()),
                6 => TensorData::I32(k.data.to_i64().iter().map(|&v| v as i32).collect()),
                7 => TensorData::I64(k.data.to_i64()),
                9 => TensorData::U8(k.data.to_f32().iter().map(|&v| u8::from(v != 0.0)).collect()),
                other => return Err(format!("Cast to {} is not supported", constfold::elem_type_name(other))),
            };
            imp.set(c.out(0)?, Value::Const(Const { shape: k.shape, data }));
            Ok(())
        }
        v if to == 1 => {
            imp.set(c.out(0)?, v);
            Ok(())
        }
        _ => Err(format!("Cast of a computed tensor to {} is not supported", constfold::elem_type_name(to))),
    }
}

/// Stores `v` with shape `target` (ONNX semantics). A flatten of an NHWC tensor keeps the NHWC
/// order and is marked [`Layout::Flat`], so a following Gemm can permute its weights instead.
pub(super) fn reshape_value(imp: &mut Importer, v: &Value, target: Vec<usize>, out: &str) -> Result<Value, String> {
    let src = imp.shape(v);
    if numel(&src) != numel(&target) {
        return Err(format!("cannot reshape {src:?} ({} elements) to {target:?}", numel(&src)));
    }
    match v {
        Value::Const(k) => Ok(Value::Const(k.reshaped(target))),
        Value::Tensor { id, layout: Layout::Perm(p) }
            if p.len() == 4 && *p == channels_last(4) && target.len() == 2 && target[0] == src[0] =>
        {
            let (c, h, w) = (src[1], src[2], src[3]);
            let id = imp.reshape(*id, target, out)?;
            let layout = if c == 1 || h * w == 1 { Layout::Perm(identity(2)) } else { Layout::Flat { c, h, w } };
            Ok(Value::Tensor { id, layout })
        }
        _ => {
            let id = imp.identity(v)?;
            let rank = target.len();
            let id = imp.reshape(id, target, out)?;
            Ok(Value::Tensor { id, layout: Layout::Perm(identity(rank)) })
        }
    }
}

pub(super) fn reshape(imp: &mut Importer, c: &Ctx) -> Result<(), String> {
    let v = c.input(imp, 0)?;
    let src = imp.shape(&v);
    let spec = if imp.opset >= 5 {
        c.const_input(imp, 1)?.ok_or("missing shape")?.data.to_i64()
    } else {
        c.ints("shape").ok_or("missing shape")?
    };
    let allowzero = c.int("allowzero", 0) != 0;
    let mut target: Vec<usize> = Vec::with_capacity(spec.len());
    let mut infer = None;
    for (i, &d) in spec.iter().enumerate() {
        match d {
            -1 if infer.is_none() => {
                infer = Some(i);
                target.push(1);
            }
            0 if !allowzero => target.push(*src.get(i).ok_or("shape copies a dimension the input does not have")?),
            d if d >= 0 => target.push(d as usize),
            _ => return Err(format!("invalid shape {spec:?}")),
        }
    }
    if let Some(i) = infer {
        let known = numel(&target);
        if known == 0 || !numel(&src).is_multiple_of(known) {
            return Err(format!("cannot reshape {src:?} to {spec:?}"));
        }
        target[i] = numel(&src) / known;
    }
    let out = reshape_value(imp, &v, target, c.out(0)?)?;
    imp.set(c.out(0)?, out);
    Ok(())
}

pub(super) fn flatten(imp: &mut Importer, c: &Ctx) -> Result<(), String> {
    let v = c.input(imp, 0)?;
    let src = imp.shape(&v);
    let axis =
        if c.int("axis", 1) == src.len() as i64 { src.len() } else { constfold::axis(c.int("axis", 1), src.len())? };
    let target = vec![src[..axis].iter().product(), src[axis..].iter().product()];
    let out = reshape_value(imp, &v, target, c.out(0)?)?;
    imp.set(c.out(0)?, out);
    Ok(())
}

pub(super) fn squeeze_unsqueeze(imp: &mut Importer, c: &Ctx, unsqueeze: bool) -> Result<(), String> {
    let v = c.input(imp, 0)?;
    let src = imp.shape(&v);
    let axes = c.axes(imp, 1, 13)?;
    let target: Vec<usize> = if unsqueeze {
        let axes = axes.ok_or("Unsqueeze needs axes")?;
        let rank = src.len() + axes.len();
        let mut axes: Vec<usize> = axes.iter().map(|&a| constfold::axis(a, rank)).collect::<Result<_, _>>()?;
        axes.sort_unstable();
        let mut it = src.iter();
        (0..rank).map(|i| if axes.contains(&i) { 1 } else { *it.next().unwrap_or(&1) }).collect()
    } else {
        let axes: Vec<usize> = match axes {
            Some(a) => a.iter().map(|&a| constfold::axis(a, src.len())).collect::<Result<_, _>>()?,
            None => (0..src.len()).filter(|&i| src[i] == 1).collect(),
        };
        if let Some(&a) = axes.iter().find(|&&a| src[a] != 1) {
            return Err(format!("cannot squeeze axis {a} of size {}", src[a]));
        }
        src.iter().enumerate().filter(|(i, _)| !axes.contains(i)).map(|(_, &d)| d).collect()
    };
    let out = reshape_value(imp, &v, target, c.out(0)?)?;
    imp.set(c.out(0)?, out);
    Ok(())
}

pub(super) fn transpose(imp: &mut Importer, c: &Ctx) -> Result<(), String> {
    let v = c.input(imp, 0)?;
    let rank = imp.shape(&v).len();
    let perm = match c.ints("perm") {
        Some(p) => ints_to_usize(&p, "perm")?,
        None => (0..rank).rev().collect(),
    };
    let mut seen = vec![false; rank];
    if perm.len() != rank || !perm.iter().all(|&p| p < rank && !std::mem::replace(&mut seen[p], true)) {
        return Err(format!("perm {perm:?} is not a permutation of rank {rank}"));
    }
    let out = match v {
        Value::Const(k) => Value::Const(k.transposed(&perm)),
        Value::Tensor { id, layout: Layout::Perm(q) } => {
            let pinv = invert(&perm);
            Value::Tensor { id, layout: Layout::Perm(q.iter().map(|&a| pinv[a]).collect()) }
        }
        flat @ Value::Tensor { layout: Layout::Flat { .. }, .. } => {
            let id = imp.identity(&flat)?;
            Value::Tensor { id, layout: Layout::Perm(invert(&perm)) }
        }
    };
    imp.set(c.out(0)?, out);
    Ok(())
}

pub(super) fn concat(imp: &mut Importer, c: &Ctx) -> Result<(), String> {
    let vals: Vec<Value> = (0..c.node.input.len())
        .filter(|&i| c.input_name(i).is_some())
        .map(|i| c.input(imp, i))
        .collect::<Result<_, _>>()?;
    let rank = imp.shape(vals.first().ok_or("Concat without inputs")?).len();
    let axis = constfold::axis(c.int("axis", 1), rank)?;
    if vals.iter().all(|v| matches!(v, Value::Const(_))) {
        let parts: Vec<Const> =
            vals.into_iter().map(|v| if let Value::Const(k) = v { k } else { unreachable!() }).collect();
        imp.set(c.out(0)?, Value::Const(constfold::concat(&parts, axis)?));
        return Ok(());
    }
    let perms: Vec<&Vec<usize>> = vals
        .iter()
        .filter_map(|v| match v {
            Value::Tensor { layout: Layout::Perm(p), .. } => Some(p),
            _ => None,
        })
        .collect();
    let tensors = vals.iter().filter(|v| matches!(v, Value::Tensor { .. })).count();
    let perm =
        if perms.len() == tensors && perms.iter().all(|p| *p == perms[0]) { perms[0].clone() } else { identity(rank) };
    let ids: Vec<TensorId> = vals.iter().map(|v| imp.stored_as(v, &perm)).collect::<Result<_, _>>()?;
    let stored_axis = perm.iter().position(|&a| a == axis).ok_or("axis out of range")?;
    let id =
        imp.emit(Op::Concat(Concat { axis: stored_axis, activation: FusedActivation::None }), ids, c.out(0)?, None)?;
    imp.set(c.out(0)?, Value::Tensor { id, layout: Layout::Perm(perm) });
    Ok(())
}
