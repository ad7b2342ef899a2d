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

mod dense;
mod elementwise;
mod shape;
mod slice;
mod spatial;

use dense::*;
use elementwise::*;
pub(crate) use elementwise::{fused_hard_swish, hard_swish_pairs};
use shape::*;
use spatial::*;

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
    "Abs" 7 => |i, c| unary(i, c, Op::Abs),
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
    "LogSoftmax" 7 => |i, c| softmax(i, c, Op::LogSoftmax),
    "MatMul" 7 => matmul,
    "Max" 8 => |i, c| extremum(i, c, BinKind::Max),
    "MaxPool" 7 => |i, c| pool(i, c, true),
    "Min" 8 => |i, c| extremum(i, c, BinKind::Min),
    "Mul" 7 => |i, c| binary(i, c, BinKind::Mul),
    "Pad" 7 => pad,
    "PRelu" 7 => |i, c| binary(i, c, BinKind::PRelu),
    "ReduceMax" 7 => |i, c| reduce(i, c, Op::ReduceMax, 18),
    "ReduceMean" 7 => |i, c| reduce(i, c, Op::Mean, 18),
    "ReduceSum" 7 => |i, c| reduce(i, c, Op::ReduceSum, 13),
    "Relu" 7 => |i, c| unary(i, c, Op::Relu),
    "Reshape" 7 => reshape,
    "Resize" 10 => resize,
    "Shape" 7 => shape,
    "Sigmoid" 7 => |i, c| unary(i, c, Op::Sigmoid),
    "Slice" 7 => slice,
    "Softmax" 7 => |i, c| softmax(i, c, Op::Softmax(Softmax { beta: 1.0 })),
    "Split" 7 => slice::split,
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
