use crate::{Graph, Node, NodeId, Tensor, TensorId};

/// A graph change proposed by a rewrite rule, applied by [`Patch::apply`].
///
/// New tensors get the ids `graph.tensors.len()`, `+1`, … in order, so a rule can refer to them
/// in `insert` before they exist (see [`Patch::new_tensor`]).
#[derive(Debug, Default)]
pub struct Patch {
    pub remove: Vec<NodeId>,
    pub insert: Vec<Node>,
    pub new_tensors: Vec<Tensor>,
    /// Every read of the first tensor (node inputs and graph outputs) becomes a read of the second.
    pub rewire: Vec<(TensorId, TensorId)>,
    /// Replaces a tensor's definition (new constant values, new shape).
    pub replace_tensor: Vec<(TensorId, Tensor)>,
    base: usize,
}

impl Patch {
    pub fn new(graph: &Graph) -> Patch {
        Patch { base: graph.tensors.len(), ..Patch::default() }
    }

    /// Registers a tensor to be created and returns the id it will have.
    pub fn new_tensor(&mut self, t: Tensor) -> TensorId {
        self.new_tensors.push(t);
        self.base + self.new_tensors.len() - 1
    }

    pub fn apply(self, g: &mut Graph) {
        assert_eq!(self.base, g.tensors.len(), "patch built against another graph");
        g.tensors.extend(self.new_tensors);
        for (id, t) in self.replace_tensor {
            g.tensors[id] = t;
        }
        let at = self.remove.iter().copied().max().map(|m| m + 1).unwrap_or(g.nodes.len());
        let mut nodes: Vec<Node> = Vec::with_capacity(g.nodes.len() + self.insert.len());
        let mut insert = Some(self.insert);
        for (i, n) in std::mem::take(&mut g.nodes).into_iter().enumerate() {
            if i == at {
                nodes.extend(insert.take().unwrap_or_default());
            }
            if !self.remove.contains(&i) {
                nodes.push(n);
            }
        }
        nodes.extend(insert.take().unwrap_or_default());
        g.nodes = nodes;
        for (from, to) in self.rewire {
            for n in &mut g.nodes {
                n.inputs.iter_mut().filter(|t| **t == from).for_each(|t| *t = to);
            }
            g.outputs.iter_mut().filter(|t| **t == from).for_each(|t| *t = to);
        }
    }
}
