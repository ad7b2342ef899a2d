use crate::{IrError, Op, Tensor};

pub type TensorId = usize;
pub type NodeId = usize;

/// One operation: `outputs = op(inputs)`. Optional trailing inputs (a bias) are simply absent.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub name: String,
    pub op: Op,
    pub inputs: Vec<TensorId>,
    pub outputs: Vec<TensorId>,
}

/// A model: tensors addressed by index, nodes in topological order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Graph {
    pub tensors: Vec<Tensor>,
    pub nodes: Vec<Node>,
    pub inputs: Vec<TensorId>,
    pub outputs: Vec<TensorId>,
}

impl Graph {
    pub fn add_tensor(&mut self, t: Tensor) -> TensorId {
        self.tensors.push(t);
        self.tensors.len() - 1
    }

    pub fn tensor(&self, id: TensorId) -> &Tensor {
        &self.tensors[id]
    }

    /// Index of the node producing `t`, if any (inputs and constants have none).
    pub fn producer(&self, t: TensorId) -> Option<NodeId> {
        self.nodes.iter().position(|n| n.outputs.contains(&t))
    }

    /// Nodes reading `t`, in order.
    pub fn consumers(&self, t: TensorId) -> Vec<NodeId> {
        (0..self.nodes.len()).filter(|&i| self.nodes[i].inputs.contains(&t)).collect()
    }

    /// Number of places reading `t`: node inputs plus graph outputs.
    pub fn use_count(&self, t: TensorId) -> usize {
        let in_nodes: usize = self.nodes.iter().map(|n| n.inputs.iter().filter(|&&i| i == t).count()).sum();
        in_nodes + self.outputs.iter().filter(|&&o| o == t).count()
    }

    /// Constant data of `t` as f32, if `t` is a constant.
    pub fn const_f32(&self, t: TensorId) -> Option<Vec<f32>> {
        self.tensors[t].f32_data()
    }

    /// Parameters (constant elements) and their bytes in the current dtypes.
    pub fn parameter_count(&self) -> (usize, usize) {
        let used: std::collections::HashSet<TensorId> =
            self.nodes.iter().flat_map(|n| n.inputs.iter().copied()).collect();
        self.tensors
            .iter()
            .enumerate()
            .filter(|(i, t)| t.is_constant() && used.contains(i))
            .fold((0, 0), |(n, b), (_, t)| (n + t.numel(), b + t.size_bytes()))
    }

    /// Checks structure (ids in range, one writer per tensor, sizes within
    /// [`crate::size::max_tensor_bytes`], constant data matching shapes, no NaN weights, usable
    /// quantization parameters) and re-infers every node's output shapes against the stored ones.
    pub fn validate(&self) -> Result<(), IrError> {
        crate::check::check_tensors(self)?;
        crate::check::check_writers(self)?;
        let mut defined = vec![false; self.tensors.len()];
        for (i, t) in self.tensors.iter().enumerate() {
            defined[i] = t.is_constant();
        }
        for &i in &self.inputs {
            defined[i] = true;
        }
        for n in &self.nodes {
            for &i in &n.inputs {
                if !defined[i] {
                    return Err(IrError::Graph(format!(
                        "node `{}` reads tensor `{}` before it is computed",
                        n.name, self.tensors[i].name
                    )));
                }
            }
            let shapes: Vec<&[usize]> = n.inputs.iter().map(|&i| &self.tensors[i].shape[..]).collect();
            let out = n.op.infer_shapes(&shapes).map_err(|msg| IrError::Node {
                node: n.name.clone(),
                op: n.op.name(),
                msg,
            })?;
            for (k, &o) in n.outputs.iter().enumerate() {
                let fits = match (&n.op, out.get(k)) {
                    (crate::Op::Reshape, Some(s)) => s[0] == self.tensors[o].numel(),
                    (_, s) => s == Some(&self.tensors[o].shape),
                };
                if !fits {
                    return Err(IrError::Node {
                        node: n.name.clone(),
                        op: n.op.name(),
                        msg: format!(
                            "output `{}` has shape {:?}, the op gives {:?}",
                            self.tensors[o].name,
                            self.tensors[o].shape,
                            out.get(k)
                        ),
                    });
                }
                defined[o] = true;
            }
        }
        for &o in &self.outputs {
            if !defined[o] {
                return Err(IrError::Graph(format!("graph output `{}` is never computed", self.tensors[o].name)));
            }
        }
        Ok(())
    }

    /// Drops nodes whose outputs nobody reads and tensors nobody references, renumbering ids.
    pub fn compact(&mut self) {
        loop {
            let before = self.nodes.len();
            let live: Vec<bool> = (0..self.tensors.len()).map(|t| self.use_count(t) > 0).collect();
            self.nodes.retain(|n| n.outputs.iter().any(|&o| live[o]));
            if self.nodes.len() == before {
                break;
            }
        }
        let mut keep = vec![false; self.tensors.len()];
        for n in &self.nodes {
            for &t in n.inputs.iter().chain(&n.outputs) {
                keep[t] = true;
            }
        }
        for &t in self.inputs.iter().chain(&self.outputs) {
            keep[t] = true;
        }
        let mut remap = vec![usize::MAX; self.tensors.len()];
        let mut tensors = Vec::new();
        for (i, t) in std::mem::take(&mut self.tensors).into_iter().enumerate() {
            if keep[i] {
                remap[i] = tensors.len();
                tensors.push(t);
            }
        }
        self.tensors = tensors;
        for n in &mut self.nodes {
            n.inputs.iter_mut().chain(n.outputs.iter_mut()).for_each(|t| *t = remap[*t]);
        }
        self.inputs.iter_mut().chain(self.outputs.iter_mut()).for_each(|t| *t = remap[*t]);
    }

    /// Reorders nodes so every node comes after the producers of its inputs (stable otherwise).
    pub fn toposort(&mut self) -> Result<(), IrError> {
        let mut ready = vec![false; self.tensors.len()];
        for (i, t) in self.tensors.iter().enumerate() {
            ready[i] = t.is_constant();
        }
        for &i in &self.inputs {
            ready[i] = true;
        }
        let mut pending: Vec<Node> = std::mem::take(&mut self.nodes);
        while !pending.is_empty() {
            let pos = pending.iter().position(|n| n.inputs.iter().all(|&i| ready[i]));
            let Some(pos) = pos else {
                let name = pending[0].name.clone();
                self.nodes.append(&mut pending);
                return Err(IrError::Graph(format!("the graph has a cycle or an undefined input at node `{name}`")));
            };
            let n = pending.remove(pos);
            n.outputs.iter().for_each(|&o| ready[o] = true);
            self.nodes.push(n);
        }
        Ok(())
    }
}
