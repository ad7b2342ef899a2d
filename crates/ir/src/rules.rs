//! Named rewrite rules. Each looks at one node and returns a [`Patch`] or nothing; a pass is a
//! list of rules run to a fixpoint by [`run_to_fixpoint`].

use crate::op::{Binary, Transpose};
use crate::{FusedActivation, Graph, Node, NodeId, Op, Patch, Tensor, TensorData, TensorId};

/// A rewrite rule: its name (for error chains and logs) and the function.
pub struct Rule {
    pub name: &'static str,
    pub apply: fn(&Graph, NodeId) -> Option<Patch>,
}

/// Rules that clean up an imported graph: layout glue, BatchNorm/bias folding, activation fusion.
pub const CLEANUP: &[Rule] = &[
    Rule { name: "remove_noop_reshape", apply: remove_noop_reshape },
    Rule { name: "merge_reshapes", apply: merge_reshapes },
    Rule { name: "transpose_as_reshape", apply: transpose_as_reshape },
    Rule { name: "merge_transposes", apply: merge_transposes },
    Rule { name: "fold_batch_norm", apply: fold_batch_norm },
    Rule { name: "fuse_activation", apply: fuse_activation },
];

/// Applies rules until none fires, then drops dead nodes and tensors. Returns how often each
/// rule fired, in `rules` order.
pub fn run_to_fixpoint(g: &mut Graph, rules: &[Rule]) -> Vec<(&'static str, usize)> {
    let mut fired = vec![0usize; rules.len()];
    'outer: loop {
        for node in 0..g.nodes.len() {
            for (k, rule) in rules.iter().enumerate() {
                if let Some(patch) = (rule.apply)(g, node) {
                    patch.apply(g);
                    g.compact();
                    fired[k] += 1;
                    continue 'outer;
                }
            }
        }
        break;
    }
    rules.iter().map(|r| r.name).zip(fired).collect()
}

/// The single node reading `t`, if exactly one node (and no graph output) reads it once.
fn sole_consumer(g: &Graph, t: TensorId) -> Option<NodeId> {
    if g.use_count(t) != 1 {
        return None;
    }
    g.consumers(t).first().copied()
}

fn remove_noop_reshape(g: &Graph, n: NodeId) -> Option<Patch> {
    let node = &g.nodes[n];
    let same = match &node.op {
        Op::Reshape => g.tensor(node.inputs[0]).shape == g.tensor(node.outputs[0]).shape,
        Op::Transpose(t) => t.perm.iter().enumerate().all(|(i, &p)| i == p),
        _ => false,
    };
    if !same || g.outputs.contains(&node.outputs[0]) && g.inputs.contains(&node.inputs[0]) {
        return None;
    }
    let mut p = Patch::new(g);
    p.remove.push(n);
    p.rewire.push((node.outputs[0], node.inputs[0]));
    keep_output_name(g, &mut p, node.outputs[0], node.inputs[0]);
    Some(p)
}

/// When a graph output is rewired onto another tensor, that tensor takes the output's name.
fn keep_output_name(g: &Graph, p: &mut Patch, from: TensorId, to: TensorId) {
    if g.outputs.contains(&from) && !g.inputs.contains(&to) {
        let mut t = g.tensor(to).clone();
        t.name = g.tensor(from).name.clone();
        p.replace_tensor.push((to, t));
    }
}

fn merge_reshapes(g: &Graph, n: NodeId) -> Option<Patch> {
    let node = &g.nodes[n];
    if node.op != Op::Reshape {
        return None;
    }
    let next = sole_consumer(g, node.outputs[0])?;
    if g.nodes[next].op != Op::Reshape {
        return None;
    }
    let mut p = Patch::new(g);
    p.remove.extend([n, next]);
    p.insert.push(Node { inputs: vec![node.inputs[0]], ..g.nodes[next].clone() });
    Some(p)
}

/// A transpose that moves only size-1 axes keeps the data order: it is a reshape.
fn transpose_as_reshape(g: &Graph, n: NodeId) -> Option<Patch> {
    let node = &g.nodes[n];
    let Op::Transpose(t) = &node.op else { return None };
    let shape = &g.tensor(node.inputs[0]).shape;
    let moved: Vec<usize> = t.perm.iter().copied().filter(|&a| shape[a] != 1).collect();
    if !moved.windows(2).all(|w| w[0] < w[1]) {
        return None;
    }
    let mut p = Patch::new(g);
    p.remove.push(n);
    p.insert.push(Node { op: Op::Reshape, ..node.clone() });
    Some(p)
}

fn merge_transposes(g: &Graph, n: NodeId) -> Option<Patch> {
    let node = &g.nodes[n];
    let Op::Transpose(first) = &node.op else { return None };
    let next = sole_consumer(g, node.outputs[0])?;
    let Op::Transpose(second) = &g.nodes[next].op else { return None };
    let perm = second.perm.iter().map(|&i| first.perm[i]).collect();
    let mut p = Patch::new(g);
    p.remove.extend([n, next]);
    p.insert.push(Node {
        op: Op::Transpose(Transpose { perm }),
        inputs: vec![node.inputs[0]],
        ..g.nodes[next].clone()
    });
    Some(p)
}

/// Per-output-channel values of a constant that broadcasts only along the last axis.
fn per_channel(g: &Graph, t: TensorId, channels: usize) -> Option<Vec<f32>> {
    let tensor = g.tensor(t);
    let data = tensor.f32_data()?;
    let leading_ones = tensor.shape.iter().rev().skip(1).all(|&d| d == 1);
    match data.len() {
        1 => Some(vec![data[0]; channels]),
        n if n == channels && leading_ones => Some(data),
        _ => None,
    }
}

/// Folds a per-channel `Mul`/`Add`/`Sub` by a constant (an imported BatchNorm, a bias add) into
/// the convolution or fully-connected layer before it.
fn fold_batch_norm(g: &Graph, n: NodeId) -> Option<Patch> {
    let node = &g.nodes[n];
    let channel_axis = match &node.op {
        Op::Conv2D(c) if c.activation == FusedActivation::None => 0,
        Op::FullyConnected(f) if f.activation == FusedActivation::None => 0,
        Op::DepthwiseConv2D(d) if d.conv.activation == FusedActivation::None => 3,
        _ => return None,
    };
    let out = node.outputs[0];
    let next = sole_consumer(g, out)?;
    let cons = &g.nodes[next];
    let (mul, sign) = match cons.op {
        Op::Mul(Binary { activation: FusedActivation::None }) => (true, 1.0),
        Op::Add(Binary { activation: FusedActivation::None }) => (false, 1.0),
        Op::Sub(Binary { activation: FusedActivation::None }) if cons.inputs[0] == out => (false, -1.0),
        _ => return None,
    };
    let other = if cons.inputs[0] == out { cons.inputs[1] } else { cons.inputs[0] };
    if g.tensor(cons.outputs[0]).shape != g.tensor(out).shape {
        return None;
    }
    let w = g.tensor(node.inputs[1]);
    let channels = w.shape[channel_axis];
    let c = per_channel(g, other, channels)?;
    let mut wdata = w.f32_data()?;
    if w.dtype != crate::DType::F32 {
        return None;
    }
    let mut bias = match node.inputs.get(2) {
        Some(&b) => g.const_f32(b)?,
        None => vec![0.0; channels],
    };
    if mul {
        let inner: usize = w.shape[channel_axis + 1..].iter().product();
        for (i, v) in wdata.iter_mut().enumerate() {
            *v *= c[(i / inner) % channels];
        }
        bias.iter_mut().zip(&c).for_each(|(b, s)| *b *= s);
    } else {
        bias.iter_mut().zip(&c).for_each(|(b, s)| *b += sign * s);
    }
    let mut p = Patch::new(g);
    let new_w = p.new_tensor(Tensor::constant(w.name.clone(), w.shape.clone(), TensorData::F32(wdata)));
    let bias_name = node.inputs.get(2).map_or(format!("{}_bias", node.name), |&b| g.tensor(b).name.clone());
    let new_b = p.new_tensor(Tensor::constant(bias_name, vec![channels], TensorData::F32(bias)));
    p.remove.extend([n, next]);
    p.insert.push(Node {
        name: node.name.clone(),
        op: node.op.clone(),
        inputs: vec![node.inputs[0], new_w, new_b],
        outputs: cons.outputs.clone(),
    });
    Some(p)
}

/// Fuses a following Relu / Relu6 / Clip(-1, 1) into an op with a fused-activation slot, also
/// through Reshapes between them (PyTorch's Conv1d imports as reshape → conv → reshape, with its
/// ReLU after the second reshape): the activation moves before the reshapes, which commute with
/// it.
fn fuse_activation(g: &Graph, n: NodeId) -> Option<Patch> {
    let node = &g.nodes[n];
    if node.op.activation() != Some(FusedActivation::None) {
        return None;
    }
    let mut reshapes = Vec::new();
    let mut next = sole_consumer(g, node.outputs[0])?;
    while g.nodes[next].op == Op::Reshape {
        reshapes.push(next);
        next = sole_consumer(g, g.nodes[next].outputs[0])?;
    }
    let act = match &g.nodes[next].op {
        Op::Relu => FusedActivation::Relu,
        Op::Relu6 => FusedActivation::Relu6,
        Op::Clip(c) if c.min == -1.0 && c.max == 1.0 => FusedActivation::ReluN1To1,
        _ => return None,
    };
    let mut fused = node.clone();
    *fused.op.activation_mut()? = act;
    let mut p = Patch::new(g);
    p.remove.extend([n, next]);
    p.remove.extend(&reshapes);
    let mut after: Vec<Node> = reshapes.iter().map(|&r| g.nodes[r].clone()).collect();
    match after.last_mut() {
        None => fused.outputs = g.nodes[next].outputs.clone(),
        Some(last) => last.outputs = g.nodes[next].outputs.clone(),
    }
    p.insert.push(fused);
    p.insert.extend(after);
    Some(p)
}
