//! Elementwise ops: the binary arithmetic ops, activations (HardSigmoid, HardSwish, Elu, Clip) and
//! Softmax.

use super::*;

#[derive(Clone, Copy, PartialEq)]
pub(super) enum BinKind {
    Add,
    Sub,
    Mul,
    Div,
    /// `a ≥ 0 ? a : b·a`, `b` the slope broadcast to `a`.
    PRelu,
    Max,
    Min,
}

pub(super) fn binary(imp: &mut Importer, c: &Ctx, kind: BinKind) -> Result<(), String> {
    let a = c.input(imp, 0)?;
    let b = c.input(imp, 1)?;
    let out = binary_values(imp, a, b, kind, c.out(0)?)?;
    imp.set(c.out(0)?, out);
    Ok(())
}

pub(super) fn binary_values(imp: &mut Importer, a: Value, b: Value, kind: BinKind, out: &str) -> Result<Value, String> {
    let f: fn(f64, f64) -> f64 = match kind {
        BinKind::Add => |x, y| x + y,
        BinKind::Sub => |x, y| x - y,
        BinKind::Mul => |x, y| x * y,
        BinKind::Div => |x, y| x / y,
        BinKind::PRelu => |x, y| if x >= 0.0 { x } else { x * y },
        BinKind::Max => f64::max,
        BinKind::Min => f64::min,
    };
    let (a, b, kind) = match (a, b, kind) {
        (Value::Const(x), Value::Const(y), BinKind::Div) if x.is_int() && y.is_int() => {
            let q = constfold::binary(&x, &y, |p, q| if q == 0.0 { 0.0 } else { (p / q).floor() })?;
            return Ok(Value::Const(q));
        }
        (Value::Const(x), Value::Const(y), _) => return Ok(Value::Const(constfold::binary(&x, &y, f)?)),
        (t, Value::Const(k), BinKind::Div) => {
            let inv = Const::f32(k.shape.clone(), k.data.to_f32().iter().map(|v| 1.0 / v).collect());
            (t, Value::Const(inv), BinKind::Mul)
        }
        (_, _, BinKind::Div) => return Err("Div by a computed tensor is not supported".into()),
        (a, b, k) => (a, b, k),
    };
    let op = match kind {
        BinKind::Add => Op::Add(Binary::default()),
        BinKind::Sub => Op::Sub(Binary::default()),
        BinKind::Mul | BinKind::Div => Op::Mul(Binary::default()),
        BinKind::PRelu => Op::PRelu,
        BinKind::Max => Op::Maximum,
        BinKind::Min => Op::Minimum,
    };
    let (sa, sb) = (imp.shape(&a), imp.shape(&b));
    let rank = sa.len().max(sb.len());
    irop::broadcast_shapes(&sa, &sb)?;
    // The layout both operands can share: a tensor's own when the other is a constant of no
    // greater rank or a tensor stored the same way; ONNX's own otherwise.
    let layout_of = |v: &Value| match v {
        Value::Tensor { layout, .. } => Some(layout.clone()),
        Value::Const(_) => None,
    };
    let layout = match (layout_of(&a), layout_of(&b)) {
        (Some(l), None) | (None, Some(l)) => Some(l),
        (Some(l1), Some(l2)) if l1 == l2 && sa == sb => Some(l1),
        _ => None,
    };
    // Constants are expanded to the full rank in place; tensors must already have it.
    let full_rank = |v: &Value, s: &[usize]| matches!(v, Value::Const(_)) || s.len() == rank;
    let fits = |l: &Layout| match l {
        Layout::Perm(p) => p.len() == rank && full_rank(&a, &sa) && full_rank(&b, &sb),
        Layout::Flat { .. } => numel(&sa) == 1 || numel(&sb) == 1 || sa == sb,
    };
    let layout = layout.filter(fits).unwrap_or(Layout::Perm(identity(rank)));
    let place = |imp: &mut Importer, v: &Value, s: &[usize]| -> Result<TensorId, String> {
        match (&layout, v) {
            (Layout::Perm(p), Value::Const(k)) => {
                let mut expanded = k.clone();
                expanded.shape = std::iter::repeat_n(1, rank - s.len()).chain(s.iter().copied()).collect();
                imp.stored_as(&Value::Const(expanded), p)
            }
            (Layout::Perm(p), t) if s.len() == p.len() => imp.stored_as(t, p),
            // A lower-rank tensor broadcasts from the right: only in ONNX's own layout.
            (Layout::Perm(_), t) => imp.identity(t),
            (Layout::Flat { .. }, Value::Const(k)) if numel(&k.shape) == 1 => {
                Ok(imp.add_const(&k.reshaped(vec![1]), out))
            }
            (Layout::Flat { .. }, Value::Tensor { id, .. }) => Ok(*id),
            (Layout::Flat { .. }, Value::Const(_)) => Err("constant does not fit a flattened layout".into()),
        }
    };
    let ia = place(imp, &a, &sa)?;
    let ib = place(imp, &b, &sb)?;
    let id = imp.emit(op, vec![ia, ib], out, None)?;
    Ok(Value::Tensor { id, layout })
}

/// ONNX `Max`/`Min` (opset 8+: any number of inputs, broadcast together): one input is its own
/// value, more fold left into a chain of two-input MAXIMUM/MINIMUM.
pub(super) fn extremum(imp: &mut Importer, c: &Ctx, kind: BinKind) -> Result<(), String> {
    let n = c.node.input.len();
    let mut acc = c.input(imp, 0)?;
    for k in 1..n {
        let out = if k + 1 == n { c.out(0)?.to_string() } else { format!("{}/{k}", c.out(0)?) };
        acc = binary_values(imp, acc, c.input(imp, k)?, kind, &out)?;
    }
    imp.set(c.out(0)?, acc);
    Ok(())
}

pub(super) fn unary(imp: &mut Importer, c: &Ctx, op: Op) -> Result<(), String> {
    let v = c.input(imp, 0)?;
    let out = match v {
        Value::Const(_) => return Err(format!("{} of a constant is not supported", c.node.op_type)),
        Value::Tensor { id, layout } => {
            let id = imp.emit(op, vec![id], c.out(0)?, None)?;
            Value::Tensor { id, layout }
        }
    };
    imp.set(c.out(0)?, out);
    Ok(())
}

/// HardSigmoid `clip(αx + β, 0, 1)` is `relu6(6αx + 6β) / 6`; TFLite has no builtin for it, so it
/// becomes MUL by 6α (left out when 6α = 1, PyTorch's α = 1/6), ADD of 6β with a RELU6 and MUL by
/// 1/6, all three with int8 kernels in TFLM.
pub(super) fn hard_sigmoid(imp: &mut Importer, c: &Ctx) -> Result<(), String> {
    let (alpha, beta) = (c.float("alpha", 0.2), c.float("beta", 0.5));
    let x = c.input(imp, 0)?;
    if matches!(x, Value::Const(_)) {
        return Err("HardSigmoid of a constant is not supported".into());
    }
    let out = c.out(0)?;
    let scalar = |v: f32| Value::Const(Const::f32(vec![1], vec![v]));
    let scaled = if (6.0 * alpha - 1.0).abs() <= f32::EPSILON {
        x
    } else {
        binary_values(imp, x, scalar(6.0 * alpha), BinKind::Mul, &format!("{out}/scaled"))?
    };
    let Value::Tensor { id, layout } =
        binary_values(imp, scaled, scalar(6.0 * beta), BinKind::Add, &format!("{out}/shifted"))?
    else {
        return Err("HardSigmoid folded to a constant".into());
    };
    let r = imp.emit(Op::Relu6, vec![id], &format!("{out}/relu6"), None)?;
    let y = binary_values(imp, Value::Tensor { id: r, layout }, scalar(1.0 / 6.0), BinKind::Mul, out)?;
    imp.set(out, y);
    Ok(())
}

/// HardSigmoid nodes that, with their Mul, are PyTorch's Hardswish below opset 14
/// (`Mul(x, HardSigmoid(x, alpha = 1/6, beta = 1/2))`, the TorchScript exporter's form): the
/// HardSigmoid's index → the Mul's index. The HardSigmoid output must feed only that Mul.
pub(crate) fn hard_swish_pairs(nodes: &[NodeProto], graph_outputs: &[&str]) -> std::collections::HashMap<usize, usize> {
    let attr = |n: &NodeProto, name: &str, d: f32| n.attribute.iter().find(|a| a.name == name).map_or(d, |a| a.f);
    let mut pairs = std::collections::HashMap::new();
    for (i, hs) in nodes.iter().enumerate() {
        if hs.op_type != "HardSigmoid" || hs.input.is_empty() || hs.output.len() != 1 {
            continue;
        }
        if (attr(hs, "alpha", 0.2) - 1.0 / 6.0).abs() > 1e-6 || (attr(hs, "beta", 0.5) - 0.5).abs() > 1e-6 {
            continue;
        }
        let y = &hs.output[0];
        let users: Vec<usize> = (0..nodes.len()).filter(|&k| nodes[k].input.contains(y)).collect();
        let [m] = users[..] else { continue };
        let mul = &nodes[m];
        let x = &hs.input[0];
        let operands = (mul.input.first(), mul.input.get(1));
        let fits = matches!(operands, (Some(a), Some(b)) if (a == x && b == y) || (a == y && b == x));
        if mul.op_type == "Mul" && mul.input.len() == 2 && fits && !graph_outputs.contains(&y.as_str()) {
            pairs.insert(i, m);
        }
    }
    pairs
}

/// The HardSwish of ONNX value `x` as `out` (fused from a HardSigmoid + Mul pair).
pub(crate) fn fused_hard_swish(imp: &mut Importer, x: &str, out: &str) -> Result<(), String> {
    let Value::Tensor { id, layout } = imp.value(x)? else {
        return Err("HardSwish of a constant is not supported".into());
    };
    let id = imp.emit(Op::HardSwish, vec![id], out, None)?;
    imp.set(out, Value::Tensor { id, layout });
    Ok(())
}

/// Elu with `alpha = 1` (PyTorch's and Keras' default) is TFLite's ELU; other alphas have no
/// builtin.
pub(super) fn elu(imp: &mut Importer, c: &Ctx) -> Result<(), String> {
    let alpha = c.float("alpha", 1.0);
    if alpha != 1.0 {
        return Err(format!("alpha {alpha} is not supported (TFLite's ELU has alpha 1)"));
    }
    unary(imp, c, Op::Elu)
}

pub(super) fn clip(imp: &mut Importer, c: &Ctx) -> Result<(), String> {
    let (min, max) = if imp.opset >= 11 {
        let bound = |i, d: f32| -> Result<f32, String> {
            Ok(c.const_input(imp, i)?.map_or(d, |k| k.data.to_f32().first().copied().unwrap_or(d)))
        };
        (bound(1, f32::NEG_INFINITY)?, bound(2, f32::INFINITY)?)
    } else {
        (c.float("min", f32::NEG_INFINITY), c.float("max", f32::INFINITY))
    };
    let op = match (min, max) {
        (0.0, 6.0) => Op::Relu6,
        (0.0, m) if m == f32::INFINITY => Op::Relu,
        (min, max) => Op::Clip(Clip { min, max }),
    };
    unary(imp, c, op)
}

/// Softmax or LogSoftmax (`op`) along `axis`.
pub(super) fn softmax(imp: &mut Importer, c: &Ctx, op: Op) -> Result<(), String> {
    let v = c.input(imp, 0)?;
    let s = imp.shape(&v);
    let rank = s.len();
    let axis = constfold::axis(c.int("axis", if imp.opset >= 13 { -1 } else { 1 }), rank)?;
    let out = c.out(0)?;
    let result = if imp.opset < 13 {
        // Softmax-1/11: over the flattened trailing block from `axis`.
        let x = imp.identity(&v)?;
        let x2 = imp.reshape(x, vec![s[..axis].iter().product(), s[axis..].iter().product()], &format!("{out}/2d"))?;
        let y = imp.emit(op, vec![x2], &format!("{out}/{}", c.node.op_type.to_ascii_lowercase()), None)?;
        imp.reshape(y, s.clone(), out)?
    } else if let Value::Tensor { id, layout: Layout::Perm(p) } = &v {
        if p.last() == Some(&axis) {
            let id = imp.emit(op, vec![*id], out, None)?;
            imp.set(out, Value::Tensor { id, layout: Layout::Perm(p.clone()) });
            return Ok(());
        }
        let mut perm: Vec<usize> = (0..rank).filter(|&a| a != axis).collect();
        perm.push(axis);
        let x = imp.stored_as(&v, &perm)?;
        let id = imp.emit(op, vec![x], out, None)?;
        imp.set(out, Value::Tensor { id, layout: Layout::Perm(perm) });
        return Ok(());
    } else {
        let x = imp.identity(&v)?;
        if axis + 1 != rank {
            return Err("softmax over an inner axis of a flattened tensor".into());
        }
        imp.emit(op, vec![x], out, None)?
    };
    imp.set(out, Value::Tensor { id: result, layout: Layout::Perm(identity(rank)) });
    Ok(())
}
