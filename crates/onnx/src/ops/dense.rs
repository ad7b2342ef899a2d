//! Dense layers: BatchNormalization folded into a constant scale, Gemm and MatMul.

use super::*;

pub(super) fn batch_norm(imp: &mut Importer, c: &Ctx) -> Result<(), String> {
    if c.node.output.iter().skip(1).any(|o| !o.is_empty()) {
        return Err("training-mode BatchNormalization is not supported".into());
    }
    let x = c.input(imp, 0)?;
    let get = |i, what: &str| -> Result<Vec<f32>, String> {
        Ok(c.const_input(imp, i)?.ok_or_else(|| format!("{what} is missing"))?.data.to_f32())
    };
    let (scale, b, mean, var) = (get(1, "scale")?, get(2, "bias")?, get(3, "mean")?, get(4, "variance")?);
    let eps = c.float("epsilon", 1e-5);
    let xs = imp.shape(&x);
    let ch = *xs.get(1).ok_or("input has no channel axis")?;
    if [&scale, &b, &mean, &var].iter().any(|v| v.len() != ch) {
        return Err(format!("statistics do not have {ch} channels"));
    }
    let s: Vec<f32> = scale.iter().zip(&var).map(|(g, v)| g / (v + eps).sqrt()).collect();
    let t: Vec<f32> = b.iter().zip(&mean).zip(&s).map(|((b, m), s)| b - m * s).collect();
    let shape: Vec<usize> = std::iter::once(ch).chain(std::iter::repeat_n(1, xs.len().saturating_sub(2))).collect();
    let out = c.out(0)?;
    let scaled =
        binary_values(imp, x, Value::Const(Const::f32(shape.clone(), s)), BinKind::Mul, &format!("{out}/scaled"))?;
    let y = binary_values(imp, scaled, Value::Const(Const::f32(shape, t)), BinKind::Add, out)?;
    imp.set(out, y);
    Ok(())
}

/// The `[out, in]` weights of a dense layer whose input may be a flattened NHWC block.
pub(super) fn dense_weights(w: Const, input: &Value) -> Result<Const, String> {
    let Value::Tensor { layout: Layout::Flat { c, h, w: wd }, .. } = input else { return Ok(w) };
    let (out, inn) = (w.shape[0], w.shape[1]);
    if c * h * wd != inn {
        return Err(format!("weights of shape {:?} do not fit an input of {} features", w.shape, c * h * wd));
    }
    let mut idx = Vec::with_capacity(out * inn);
    for o in 0..out {
        for s in 0..inn {
            let (cc, rest) = (s % c, s / c);
            let (hh, ww) = (rest / wd, rest % wd);
            idx.push(o * inn + cc * h * wd + hh * wd + ww);
        }
    }
    Ok(Const { data: w.data.gather(&idx), shape: w.shape })
}

pub(super) fn dense(
    imp: &mut Importer,
    c: &Ctx,
    a: Value,
    w: Const,
    bias: Option<Const>,
    keep_num_dims: bool,
) -> Result<(), String> {
    let w = dense_weights(w, &a)?;
    let xi = match &a {
        Value::Tensor { id, layout: Layout::Flat { .. } } => *id,
        other => imp.identity(other)?,
    };
    let mut inputs = vec![xi, imp.add_const(&w, c.input_name(1).unwrap_or("weights"))];
    if let Some(b) = bias {
        inputs.push(imp.add_const(&b, &format!("{}/bias", imp.node_name)));
    }
    let rank = if keep_num_dims { imp.shape(&a).len() } else { 2 };
    let id = imp.emit(
        Op::FullyConnected(FullyConnected { activation: FusedActivation::None, keep_num_dims }),
        inputs,
        c.out(0)?,
        None,
    )?;
    imp.set(c.out(0)?, Value::Tensor { id, layout: Layout::Perm(identity(rank)) });
    Ok(())
}

pub(super) fn gemm(imp: &mut Importer, c: &Ctx) -> Result<(), String> {
    let a = c.input(imp, 0)?;
    let b = c.const_input(imp, 1)?.ok_or("B is missing")?;
    if c.int("transA", 0) != 0 {
        return Err("transA = 1 is not supported".into());
    }
    if imp.shape(&a).len() != 2 || b.shape.len() != 2 {
        return Err("Gemm needs 2-D A and B".into());
    }
    let (alpha, beta) = (c.float("alpha", 1.0), c.float("beta", 1.0));
    let w = if c.int("transB", 0) != 0 { b } else { b.transposed(&[1, 0]) };
    let units = w.shape[0];
    let w = Const::f32(w.shape.clone(), w.data.to_f32().iter().map(|v| v * alpha).collect());
    let scaled = |k: &Const| Const::f32(k.shape.clone(), k.data.to_f32().iter().map(|v| beta * v).collect());
    match c.const_input(imp, 2)? {
        None => dense(imp, c, a, w, None, false),
        Some(k) if numel(&k.shape) == 1 || (numel(&k.shape) == units && k.shape.last() == Some(&units)) => {
            let v = k.data.to_f32();
            dense(
                imp,
                c,
                a,
                w,
                Some(Const::f32(vec![units], (0..units).map(|i| beta * v[i % v.len()]).collect())),
                false,
            )
        }
        Some(k) => {
            // A bias with a row per sample: a dense layer, then an Add.
            let out = c.out(0)?.to_string();
            let rows = imp.shape(&a)[0];
            irop::broadcast_shapes(&k.shape, &[rows, units])?;
            dense(imp, c, a, w, None, false)?;
            let y = imp.value(&out)?;
            let sum = binary_values(imp, y, Value::Const(scaled(&k)), BinKind::Add, &format!("{out}/bias"))?;
            imp.set(&out, sum);
            Ok(())
        }
    }
}

pub(super) fn matmul(imp: &mut Importer, c: &Ctx) -> Result<(), String> {
    if c.all_const(imp) {
        return Err("MatMul of two constants is not supported".into());
    }
    let a = c.input(imp, 0)?;
    let Some(b) = c.const_input(imp, 1).ok().flatten() else {
        return Err("MatMul needs a constant right-hand side (weights)".into());
    };
    let rank = imp.shape(&a).len();
    if b.shape.len() != 2 || rank < 2 {
        return Err(format!("MatMul of {:?} by {:?} is not a dense layer", imp.shape(&a), b.shape));
    }
    dense(imp, c, a, b.transposed(&[1, 0]), None, rank > 2)
}
