//! One translation function per ONNX op, and the table `tinyq ops` lists.
//!
//! Each function reads its ONNX node (opset-dependent attributes and inputs), folds it when all
//! inputs are constants, and otherwise emits IR ops on tensors in whatever stored layout is
//! cheapest, recording the layout of its outputs. Specs: <https://onnx.ai/onnx/operators/>.

use tinyq_ir::op::{
    self as irop, Binary, Clip, Concat, Conv2D, DepthwiseConv2D, FullyConnected, LeakyRelu, Mean, Pad, Pool2D, Softmax,
};
use tinyq_ir::{numel, FusedActivation, Op, Padding, TensorData, TensorId};

use crate::constfold::{self, Const};
use crate::import::{channels_last, identity, invert, Importer, Layout, Value};
use crate::proto::{AttributeProto, NodeProto};

type Translate = fn(&mut Importer, &Ctx) -> Result<(), String>;

pub(crate) struct Entry {
    pub op: &'static str,
    pub since: i64,
    /// The last opset that has the op (`OPSET_RANGE.1` unless the op was removed).
    pub until: i64,
    f: Translate,
}

macro_rules! until {
    () => {
        crate::import::OPSET_RANGE.1
    };
    ($u:literal) => {
        $u
    };
}

macro_rules! table {
    ($($op:literal $since:literal $(..= $until:literal)? => $f:expr),* $(,)?) => {
        pub(crate) const TABLE: &[Entry] =
            &[$(Entry { op: $op, since: $since, until: until!($($until)?), f: $f }),*];
    };
}

table! {
    "Add" 7 => |i, c| binary(i, c, BinKind::Add),
    "AveragePool" 7 => |i, c| pool(i, c, false),
    "BatchNormalization" 7 => batch_norm,
    "Cast" 7 => cast,
    "Clip" 7 => clip,
    "Concat" 7 => concat,
    "Constant" 7 => constant,
    "ConstantOfShape" 9 => constant_of_shape,
    "Conv" 7 => conv,
    "Div" 7 => |i, c| binary(i, c, BinKind::Div),
    "Dropout" 7 => identity_op,
    "Elu" 7 => elu,
    "Flatten" 7 => flatten,
    "Gather" 7 => gather,
    "Gemm" 7 => gemm,
    "GlobalAveragePool" 7 => global_average_pool,
    "GlobalMaxPool" 7 => global_max_pool,
    "HardSigmoid" 7 => hard_sigmoid,
    "HardSwish" 14 => |i, c| unary(i, c, Op::HardSwish),
    "Identity" 7 => identity_op,
    "LeakyRelu" 7 => |i, c| { let alpha = c.float("alpha", 0.01); unary(i, c, Op::LeakyRelu(LeakyRelu { alpha })) },
    "MatMul" 7 => matmul,
    "MaxPool" 7 => |i, c| pool(i, c, true),
    "Mul" 7 => |i, c| binary(i, c, BinKind::Mul),
    "Pad" 7 => pad,
    "PRelu" 7 => |i, c| binary(i, c, BinKind::PRelu),
    "ReduceMax" 7 => |i, c| reduce(i, c, true),
    "ReduceMean" 7 => |i, c| reduce(i, c, false),
    "Relu" 7 => |i, c| unary(i, c, Op::Relu),
    "Reshape" 7 => reshape,
    "Resize" 10 => resize,
    "Shape" 7 => shape,
    "Sigmoid" 7 => |i, c| unary(i, c, Op::Sigmoid),
    "Slice" 7 => slice,
    "Softmax" 7 => softmax,
    "Squeeze" 7 => |i, c| squeeze_unsqueeze(i, c, false),
    "Sub" 7 => |i, c| binary(i, c, BinKind::Sub),
    "Tanh" 7 => |i, c| unary(i, c, Op::Tanh),
    "Transpose" 7 => transpose,
    "Unsqueeze" 7 => |i, c| squeeze_unsqueeze(i, c, true),
    "Upsample" 7..=9 => resize,
}

pub(crate) fn translate(imp: &mut Importer, node: &NodeProto) -> Result<(), String> {
    let entry = TABLE.iter().find(|e| e.op == node.op_type).ok_or_else(|| {
        format!("op `{}` is not supported by tinyq (`tinyq ops` lists the supported ones)", node.op_type)
    })?;
    if imp.opset < entry.since || imp.opset > entry.until {
        return Err(format!("tinyq supports {} in opsets {} to {}", entry.op, entry.since, entry.until));
    }
    (entry.f)(imp, &Ctx { node })
}

pub(crate) struct Ctx<'a> {
    node: &'a NodeProto,
}

impl Ctx<'_> {
    fn attr(&self, name: &str) -> Option<&AttributeProto> {
        self.node.attribute.iter().find(|a| a.name == name)
    }
    fn int(&self, name: &str, default: i64) -> i64 {
        self.attr(name).map_or(default, |a| a.i)
    }
    fn float(&self, name: &str, default: f32) -> f32 {
        self.attr(name).map_or(default, |a| a.f)
    }
    fn ints(&self, name: &str) -> Option<Vec<i64>> {
        self.attr(name).map(|a| a.ints.clone())
    }
    fn string(&self, name: &str) -> Option<String> {
        self.attr(name).map(|a| String::from_utf8_lossy(&a.s).into_owned())
    }
    fn input_name(&self, i: usize) -> Option<&str> {
        self.node.input.get(i).map(String::as_str).filter(|s| !s.is_empty())
    }
    fn input(&self, imp: &Importer, i: usize) -> Result<Value, String> {
        let name = self.input_name(i).ok_or_else(|| format!("input {i} is missing"))?;
        imp.value(name)
    }
    /// An input that must be a constant (weights, shapes, axes), if present.
    fn const_input(&self, imp: &Importer, i: usize) -> Result<Option<Const>, String> {
        let Some(name) = self.input_name(i) else { return Ok(None) };
        match imp.value(name)? {
            Value::Const(c) => Ok(Some(c)),
            Value::Tensor { .. } => {
                Err(format!("input {i} (`{name}`) must be a constant; tinyq does not compute it at run time"))
            }
        }
    }
    fn out(&self, i: usize) -> Result<&str, String> {
        self.node.output.get(i).map(String::as_str).ok_or_else(|| format!("output {i} is missing"))
    }
    fn all_const(&self, imp: &Importer) -> bool {
        self.node.input.iter().filter(|n| !n.is_empty()).all(|n| matches!(imp.value(n), Ok(Value::Const(_))))
    }
    /// Axes from the `axes` attribute (old opsets) or the input `at` (new opsets).
    fn axes(&self, imp: &Importer, at: usize, input_since: i64) -> Result<Option<Vec<i64>>, String> {
        if imp.opset >= input_since {
            Ok(self.const_input(imp, at)?.map(|c| c.data.to_i64()))
        } else {
            Ok(self.ints("axes"))
        }
    }
}

fn ints_to_usize(v: &[i64], what: &str) -> Result<Vec<usize>, String> {
    v.iter().map(|&x| tinyq_ir::size::non_negative(what, x)).collect()
}

fn identity_op(imp: &mut Importer, c: &Ctx) -> Result<(), String> {
    let v = c.input(imp, 0)?;
    imp.set(c.out(0)?, v);
    Ok(())
}

fn constant(imp: &mut Importer, c: &Ctx) -> Result<(), String> {
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

fn constant_of_shape(imp: &mut Importer, c: &Ctx) -> Result<(), String> {
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

fn shape(imp: &mut Importer, c: &Ctx) -> Result<(), String> {
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

fn gather(imp: &mut Importer, c: &Ctx) -> Result<(), String> {
    if !c.all_const(imp) {
        return Err("Gather is supported on constants only (shape computations)".into());
    }
    let data = c.const_input(imp, 0)?.ok_or("missing data")?;
    let idx = c.const_input(imp, 1)?.ok_or("missing indices")?;
    let axis = constfold::axis(c.int("axis", 0), data.shape.len())?;
    let out = constfold::gather(&data, &idx, axis)?;
    imp.set(c.out(0)?, Value::Const(out));
    Ok(())
}

fn slice(imp: &mut Importer, c: &Ctx) -> Result<(), String> {
    if !c.all_const(imp) {
        return Err("Slice is supported on constants only (shape computations)".into());
    }
    let data = c.const_input(imp, 0)?.ok_or("missing data")?;
    let rank = data.shape.len();
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
    let out = constfold::slice(&data, &starts, &ends, &axes, &steps)?;
    imp.set(c.out(0)?, Value::Const(out));
    Ok(())
}

fn cast(imp: &mut Importer, c: &Ctx) -> Result<(), String> {
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
fn reshape_value(imp: &mut Importer, v: &Value, target: Vec<usize>, out: &str) -> Result<Value, String> {
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

fn reshape(imp: &mut Importer, c: &Ctx) -> Result<(), String> {
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

fn flatten(imp: &mut Importer, c: &Ctx) -> Result<(), String> {
    let v = c.input(imp, 0)?;
    let src = imp.shape(&v);
    let axis =
        if c.int("axis", 1) == src.len() as i64 { src.len() } else { constfold::axis(c.int("axis", 1), src.len())? };
    let target = vec![src[..axis].iter().product(), src[axis..].iter().product()];
    let out = reshape_value(imp, &v, target, c.out(0)?)?;
    imp.set(c.out(0)?, out);
    Ok(())
}

fn squeeze_unsqueeze(imp: &mut Importer, c: &Ctx, unsqueeze: bool) -> Result<(), String> {
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

fn transpose(imp: &mut Importer, c: &Ctx) -> Result<(), String> {
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

fn concat(imp: &mut Importer, c: &Ctx) -> Result<(), String> {
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

#[derive(Clone, Copy, PartialEq)]
enum BinKind {
    Add,
    Sub,
    Mul,
    Div,
    /// `a ≥ 0 ? a : b·a`, `b` the slope broadcast to `a`.
    PRelu,
}

fn binary(imp: &mut Importer, c: &Ctx, kind: BinKind) -> Result<(), String> {
    let a = c.input(imp, 0)?;
    let b = c.input(imp, 1)?;
    let out = binary_values(imp, a, b, kind, c.out(0)?)?;
    imp.set(c.out(0)?, out);
    Ok(())
}

fn binary_values(imp: &mut Importer, a: Value, b: Value, kind: BinKind, out: &str) -> Result<Value, String> {
    let f: fn(f64, f64) -> f64 = match kind {
        BinKind::Add => |x, y| x + y,
        BinKind::Sub => |x, y| x - y,
        BinKind::Mul => |x, y| x * y,
        BinKind::Div => |x, y| x / y,
        BinKind::PRelu => |x, y| if x >= 0.0 { x } else { x * y },
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

fn unary(imp: &mut Importer, c: &Ctx, op: Op) -> Result<(), String> {
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
fn hard_sigmoid(imp: &mut Importer, c: &Ctx) -> Result<(), String> {
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
fn elu(imp: &mut Importer, c: &Ctx) -> Result<(), String> {
    let alpha = c.float("alpha", 1.0);
    if alpha != 1.0 {
        return Err(format!("alpha {alpha} is not supported (TFLite's ELU has alpha 1)"));
    }
    unary(imp, c, Op::Elu)
}

fn clip(imp: &mut Importer, c: &Ctx) -> Result<(), String> {
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

fn softmax(imp: &mut Importer, c: &Ctx) -> Result<(), String> {
    let v = c.input(imp, 0)?;
    let s = imp.shape(&v);
    let rank = s.len();
    let axis = constfold::axis(c.int("axis", if imp.opset >= 13 { -1 } else { 1 }), rank)?;
    let op = Op::Softmax(Softmax { beta: 1.0 });
    let out = c.out(0)?;
    let result = if imp.opset < 13 {
        // Softmax-1/11: over the flattened trailing block from `axis`.
        let x = imp.identity(&v)?;
        let x2 = imp.reshape(x, vec![s[..axis].iter().product(), s[axis..].iter().product()], &format!("{out}/2d"))?;
        let y = imp.emit(op, vec![x2], &format!("{out}/softmax"), None)?;
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

/// Spatial attributes shared by Conv and the pools, for 1-D and 2-D windows (1-D as H = 1).
struct Window {
    kernel: [usize; 2],
    stride: [usize; 2],
    dilation: [usize; 2],
    padding: Padding,
}

fn window(c: &Ctx, spatial: &[usize], kernel: Vec<usize>) -> Result<Window, String> {
    let nd = spatial.len();
    let two = |v: Vec<usize>| -> [usize; 2] {
        if nd == 1 {
            [1, v[0]]
        } else {
            [v[0], v[1]]
        }
    };
    let get = |name: &str| -> Result<Vec<usize>, String> {
        match c.ints(name) {
            Some(v) if v.len() == nd => ints_to_usize(&v, name),
            Some(v) => Err(format!("{name} {v:?} does not match {nd} spatial dims")),
            None => Ok(vec![1; nd]),
        }
    };
    if kernel.len() != nd {
        return Err(format!("kernel {kernel:?} does not match {nd} spatial dims"));
    }
    let (stride, dilation) = (get("strides")?, get("dilations")?);
    if stride.contains(&0) || dilation.contains(&0) {
        return Err("strides and dilations must be positive".into());
    }
    if kernel.contains(&0) {
        return Err(format!("kernel_shape {kernel:?} must be positive"));
    }
    let input = two(spatial.to_vec());
    let (k, s, d) = (two(kernel), two(stride), two(dilation));
    let explicit = |p: Vec<usize>| {
        if nd == 1 {
            Padding::Explicit { top: 0, bottom: 0, left: p[0], right: p[1] }
        } else {
            Padding::Explicit { top: p[0], left: p[1], bottom: p[2], right: p[3] }
        }
    };
    let auto = c.string("auto_pad").unwrap_or_else(|| "NOTSET".into());
    let padding = match auto.as_str() {
        "NOTSET" => match c.ints("pads") {
            Some(p) if p.len() == 2 * nd => explicit(ints_to_usize(&p, "pads")?),
            Some(p) => return Err(format!("pads {p:?} do not match {nd} spatial dims")),
            None => Padding::Valid,
        },
        "VALID" => Padding::Valid,
        "SAME_UPPER" => Padding::Same,
        "SAME_LOWER" => {
            let mut before = [0; 2];
            let mut after = [0; 2];
            for i in 0..2 {
                let out = input[i].div_ceil(s[i]);
                let total = ((out - 1) * s[i] + (k[i] - 1) * d[i] + 1).saturating_sub(input[i]);
                after[i] = total / 2;
                before[i] = total - after[i];
            }
            Padding::Explicit { top: before[0], bottom: after[0], left: before[1], right: after[1] }
        }
        other => return Err(format!("auto_pad `{other}` is not supported")),
    };
    Ok(Window { kernel: k, stride: s, dilation: d, padding: padding.canonical(input, k, s, d) })
}

/// The input as `[N, H, W, C]` (1-D inputs get H = 1) and how to turn the result back.
fn spatial_input(imp: &mut Importer, v: &Value, what: &str) -> Result<(TensorId, usize), String> {
    let s = imp.shape(v);
    match s.len() {
        4 => Ok((imp.stored_as(v, &channels_last(4))?, 2)),
        3 => {
            let x = imp.stored_as(v, &channels_last(3))?;
            let name = format!("{}/as2d", imp.g.tensors[x].name);
            Ok((imp.reshape(x, vec![s[0], 1, s[2], s[1]], &name)?, 1))
        }
        r => Err(format!("{what} on a rank-{r} input is not supported (1-D and 2-D only)")),
    }
}

fn spatial_output(imp: &mut Importer, y: TensorId, nd: usize, out: &str) -> Result<Value, String> {
    if nd == 2 {
        return Ok(Value::Tensor { id: y, layout: Layout::Perm(channels_last(4)) });
    }
    let s = imp.g.tensors[y].shape.clone();
    let id = imp.reshape(y, vec![s[0], s[2], s[3]], out)?;
    Ok(Value::Tensor { id, layout: Layout::Perm(channels_last(3)) })
}

fn conv(imp: &mut Importer, c: &Ctx) -> Result<(), String> {
    let x = c.input(imp, 0)?;
    let w = c.const_input(imp, 1)?.ok_or("weights are missing")?;
    let bias = c.const_input(imp, 2)?;
    let xs = imp.shape(&x);
    if w.shape.len() != xs.len() || xs.len() < 3 {
        return Err(format!("weights {:?} do not fit input {xs:?}", w.shape));
    }
    let kernel = match c.ints("kernel_shape") {
        Some(k) => ints_to_usize(&k, "kernel_shape")?,
        None => w.shape[2..].to_vec(),
    };
    let win = window(c, &xs[2..], kernel)?;
    let group = c.int("group", 1) as usize;
    let (cout, cin_g) = (w.shape[0], w.shape[1]);
    let cin = xs[1];
    if group == 0 || cin_g * group != cin || cout % group != 0 {
        return Err(format!("weights {:?} with group {group} do not fit {cin} input channels", w.shape));
    }
    let w4 = if xs.len() == 3 { w.reshaped(vec![cout, cin_g, 1, w.shape[2]]) } else { w.clone() };
    let conv =
        Conv2D { stride: win.stride, dilation: win.dilation, padding: win.padding, activation: FusedActivation::None };
    let depthwise = group == cin && group > 1 && cin_g == 1;
    let (op, wt) = if depthwise {
        (Op::DepthwiseConv2D(DepthwiseConv2D { conv, depth_multiplier: cout / cin }), w4.transposed(&[1, 2, 3, 0]))
    } else {
        (Op::Conv2D(conv), w4.transposed(&[0, 2, 3, 1]))
    };
    let (xi, nd) = spatial_input(imp, &x, "Conv")?;
    let mut inputs = vec![xi, imp.add_const(&wt, c.input_name(1).unwrap_or("weights"))];
    if let Some(b) = bias {
        if b.shape != [cout] {
            return Err(format!("bias shape {:?} is not [{cout}]", b.shape));
        }
        inputs.push(imp.add_const(&b, c.input_name(2).unwrap_or("bias")));
    }
    let out = c.out(0)?;
    let y = imp.emit(op, inputs, out, None)?;
    let v = spatial_output(imp, y, nd, out)?;
    imp.set(out, v);
    Ok(())
}

fn pool(imp: &mut Importer, c: &Ctx, max: bool) -> Result<(), String> {
    if c.node.output.len() > 1 && !c.node.output[1].is_empty() {
        return Err("MaxPool's indices output is not supported".into());
    }
    let x = c.input(imp, 0)?;
    let xs = imp.shape(&x);
    if xs.len() < 3 {
        return Err(format!("input {xs:?} has no spatial dims"));
    }
    let kernel = ints_to_usize(&c.ints("kernel_shape").ok_or("kernel_shape is missing")?, "kernel_shape")?;
    let win = window(c, &xs[2..], kernel)?;
    if win.dilation != [1, 1] {
        return Err("dilated pooling is not supported".into());
    }
    let (mut xi, nd) = spatial_input(imp, &x, "pooling")?;
    let mut padding = win.padding;
    if c.int("ceil_mode", 0) != 0 {
        let s = &imp.g.tensors[xi].shape;
        for d in 0..2 {
            let pads = match padding {
                Padding::Explicit { top, bottom, left, right } => {
                    if d == 0 {
                        top + bottom
                    } else {
                        left + right
                    }
                }
                Padding::Same | Padding::Valid => 0,
            };
            let span = (s[1 + d] + pads).saturating_sub(win.kernel[d]);
            if padding != Padding::Same && span % win.stride[d] != 0 {
                return Err("ceil_mode = 1 changes the output size here; it is not supported".into());
            }
        }
    }
    if !max && c.int("count_include_pad", 0) != 0 && padding != Padding::Valid {
        let s = imp.g.tensors[xi].shape.clone();
        let h = padding.resolve(0, s[1], win.kernel[0], win.stride[0], 1)?;
        let w = padding.resolve(1, s[2], win.kernel[1], win.stride[1], 1)?;
        let after =
            |out: usize, before: usize, k: usize, st: usize, n: usize| ((out - 1) * st + k).saturating_sub(n + before);
        let pads = vec![
            [0, 0],
            [h.pad_before, after(h.out, h.pad_before, win.kernel[0], win.stride[0], s[1])],
            [w.pad_before, after(w.out, w.pad_before, win.kernel[1], win.stride[1], s[2])],
            [0, 0],
        ];
        let name = format!("{}/padded", c.out(0)?);
        xi = imp.emit(Op::Pad(Pad { pads, value: 0.0 }), vec![xi], &name, None)?;
        padding = Padding::Valid;
    }
    let p = Pool2D { filter: win.kernel, stride: win.stride, padding, activation: FusedActivation::None };
    let op = if max { Op::MaxPool2D(p) } else { Op::AvgPool2D(p) };
    let out = c.out(0)?;
    let y = imp.emit(op, vec![xi], out, None)?;
    let v = spatial_output(imp, y, nd, out)?;
    imp.set(out, v);
    Ok(())
}

fn global_average_pool(imp: &mut Importer, c: &Ctx) -> Result<(), String> {
    let x = c.input(imp, 0)?;
    let rank = imp.shape(&x).len();
    if rank < 3 {
        return Err("GlobalAveragePool needs spatial dims".into());
    }
    let perm = channels_last(rank);
    let xi = imp.stored_as(&x, &perm)?;
    let id = imp.emit(Op::Mean(Mean { axes: (1..rank - 1).collect(), keep_dims: true }), vec![xi], c.out(0)?, None)?;
    imp.set(c.out(0)?, Value::Tensor { id, layout: Layout::Perm(perm) });
    Ok(())
}

fn global_max_pool(imp: &mut Importer, c: &Ctx) -> Result<(), String> {
    let x = c.input(imp, 0)?;
    let (xi, nd) = spatial_input(imp, &x, "GlobalMaxPool")?;
    let s = imp.g.tensors[xi].shape.clone();
    let p = Pool2D { filter: [s[1], s[2]], stride: [1, 1], padding: Padding::Valid, activation: FusedActivation::None };
    let out = c.out(0)?;
    let y = imp.emit(Op::MaxPool2D(p), vec![xi], out, None)?;
    let v = spatial_output(imp, y, nd, out)?;
    imp.set(out, v);
    Ok(())
}

/// ReduceMean → MEAN, ReduceMax → REDUCE_MAX (axes an input from opset 18).
fn reduce(imp: &mut Importer, c: &Ctx, max: bool) -> Result<(), String> {
    let x = c.input(imp, 0)?;
    let rank = imp.shape(&x).len();
    let keep = c.int("keepdims", 1) != 0;
    let axes: Vec<usize> = match c.axes(imp, 1, 18)? {
        Some(a) if !a.is_empty() => a.iter().map(|&a| constfold::axis(a, rank)).collect::<Result<_, _>>()?,
        _ if c.int("noop_with_empty_axes", 0) != 0 => return identity_op(imp, c),
        _ => (0..rank).collect(),
    };
    let (xi, perm) = match &x {
        Value::Tensor { id, layout: Layout::Perm(p) } => (*id, p.clone()),
        other => (imp.identity(other)?, identity(rank)),
    };
    let mut stored: Vec<usize> = (0..rank).filter(|&k| axes.contains(&perm[k])).collect();
    stored.sort_unstable();
    let p = Mean { axes: stored, keep_dims: keep };
    let id = imp.emit(if max { Op::ReduceMax(p) } else { Op::Mean(p) }, vec![xi], c.out(0)?, None)?;
    let layout = if keep {
        perm
    } else {
        let kept: Vec<usize> = perm.iter().copied().filter(|a| !axes.contains(a)).collect();
        let mut sorted = kept.clone();
        sorted.sort_unstable();
        kept.iter().map(|a| sorted.iter().position(|s| s == a).unwrap()).collect()
    };
    imp.set(c.out(0)?, Value::Tensor { id, layout: Layout::Perm(layout) });
    Ok(())
}

fn pad(imp: &mut Importer, c: &Ctx) -> Result<(), String> {
    let x = c.input(imp, 0)?;
    let rank = imp.shape(&x).len();
    let mode = c.string("mode").unwrap_or_else(|| "constant".into());
    if mode != "constant" {
        return Err(format!("Pad mode `{mode}` is not supported (constant only)"));
    }
    let (pads, value, axes) = if imp.opset >= 11 {
        let pads = c.const_input(imp, 1)?.ok_or("pads are missing")?.data.to_i64();
        let value = c.const_input(imp, 2)?.map_or(0.0, |k| k.data.to_f32().first().copied().unwrap_or(0.0));
        let axes = c.const_input(imp, 3)?.map(|k| k.data.to_i64());
        (pads, value, axes)
    } else {
        (c.ints("pads").ok_or("pads are missing")?, c.float("value", 0.0), None)
    };
    let axes: Vec<usize> = match axes {
        Some(a) => a.iter().map(|&a| constfold::axis(a, rank)).collect::<Result<_, _>>()?,
        None => (0..rank).collect(),
    };
    if pads.len() != 2 * axes.len() {
        return Err(format!("{} pads for {} axes", pads.len(), axes.len()));
    }
    let pads = ints_to_usize(&pads, "pads (negative pads crop)")?;
    let mut semantic = vec![[0usize; 2]; rank];
    for (k, &a) in axes.iter().enumerate() {
        semantic[a] = [pads[k], pads[k + axes.len()]];
    }
    let (xi, perm) = match &x {
        Value::Tensor { id, layout: Layout::Perm(p) } => (*id, p.clone()),
        other => (imp.identity(other)?, identity(rank)),
    };
    let stored = perm.iter().map(|&a| semantic[a]).collect();
    let id = imp.emit(Op::Pad(Pad { pads: stored, value }), vec![xi], c.out(0)?, None)?;
    imp.set(c.out(0)?, Value::Tensor { id, layout: Layout::Perm(perm) });
    Ok(())
}

/// Resize / Upsample in nearest mode → RESIZE_NEAREST_NEIGHBOR, for the coordinate modes and
/// roundings that pick TFLite's source pixels: `asymmetric` + `floor` (PyTorch's `nearest`,
/// Upsample), `half_pixel` + `round_prefer_ceil` or `tf_half_pixel_for_nn` + `floor`
/// (`half_pixel_centers`), `align_corners` + `round_prefer_ceil`. Height and width change by a
/// whole factor (up or down), so `x / scale` and TFLite's `x · (in / out)` are the same float.
fn resize(imp: &mut Importer, c: &Ctx) -> Result<(), String> {
    let x = c.input(imp, 0)?;
    let xs = imp.shape(&x);
    if xs.len() != 4 {
        return Err(format!("{} of a rank-{} input is not supported (4-D NCHW only)", c.node.op_type, xs.len()));
    }
    let mode = c.string("mode").unwrap_or_else(|| "nearest".into());
    if mode != "nearest" {
        return Err(format!("mode `{mode}` is not supported (nearest only)"));
    }
    let upsample = c.node.op_type == "Upsample";
    if c.attr("axes").is_some() || c.string("keep_aspect_ratio_policy").is_some_and(|p| p != "stretch") {
        return Err("axes and keep_aspect_ratio_policy are not supported".into());
    }
    let scales = match (upsample, imp.opset) {
        (true, ..=8) => c.attr("scales").map(|a| a.floats.clone()),
        (true, _) | (false, 10) => c.const_input(imp, 1)?.map(|k| k.data.to_f32()),
        (false, _) => c.const_input(imp, 2)?.map(|k| k.data.to_f32()).filter(|v| !v.is_empty()),
    };
    let sizes = if !upsample && imp.opset >= 11 { c.const_input(imp, 3)?.map(|k| k.data.to_i64()) } else { None };
    let out: Vec<usize> = match (sizes, scales) {
        (Some(s), _) if s.len() == 4 => ints_to_usize(&s, "sizes")?,
        (None, Some(f)) if f.len() == 4 => xs.iter().zip(&f).map(|(&d, &k)| (d as f32 * k).floor() as usize).collect(),
        _ => return Err("needs 4 scales or 4 sizes".into()),
    };
    if out[..2] != xs[..2] || out[2..].contains(&0) {
        return Err(format!("resizes {xs:?} to {out:?}; only height and width may change"));
    }
    let whole = |i: usize, o: usize| o.is_multiple_of(i) || i.is_multiple_of(o);
    if !whole(xs[2], out[2]) || !whole(xs[3], out[3]) {
        return Err(format!("resizing {:?} to {:?} is not by a whole factor; not supported", &xs[2..], &out[2..]));
    }
    let coord = if upsample || imp.opset < 11 {
        "asymmetric".into()
    } else {
        c.string("coordinate_transformation_mode").unwrap_or_else(|| "half_pixel".into())
    };
    let rounding = if upsample || imp.opset < 11 {
        "floor".into()
    } else {
        c.string("nearest_mode").unwrap_or_else(|| "round_prefer_floor".into())
    };
    let (align_corners, half_pixel_centers) = match (coord.as_str(), rounding.as_str()) {
        ("asymmetric", "floor") => (false, false),
        ("half_pixel", "round_prefer_ceil") | ("tf_half_pixel_for_nn", "floor") => (false, true),
        ("pytorch_half_pixel", "round_prefer_ceil") if out[2] > 1 && out[3] > 1 => (false, true),
        ("align_corners", "round_prefer_ceil") => (true, false),
        (cm, nm) => {
            return Err(format!(
                "coordinate_transformation_mode `{cm}` with nearest_mode `{nm}` has no TFLite equivalent"
            ))
        }
    };
    let xi = imp.stored_as(&x, &channels_last(4))?;
    let op = Op::ResizeNearest(irop::ResizeNearest { size: [out[2], out[3]], align_corners, half_pixel_centers });
    let id = imp.emit(op, vec![xi], c.out(0)?, None)?;
    imp.set(c.out(0)?, Value::Tensor { id, layout: Layout::Perm(channels_last(4)) });
    Ok(())
}

fn batch_norm(imp: &mut Importer, c: &Ctx) -> Result<(), String> {
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
fn dense_weights(w: Const, input: &Value) -> Result<Const, String> {
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

fn dense(
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

fn gemm(imp: &mut Importer, c: &Ctx) -> Result<(), String> {
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

fn matmul(imp: &mut Importer, c: &Ctx) -> Result<(), String> {
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
