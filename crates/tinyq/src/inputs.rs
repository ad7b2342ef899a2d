//! How data arrays map to model inputs.
//!
//! With model input shape `S` and data array shape `D`:
//! - `D == S`: one sample; outputs keep the model's output shapes.
//! - `S[0] == 1` and `D[1..] == S[1..]`: `D[0]` samples along the batch axis; outputs are
//!   `[N] + out[1..]`.
//! - `D[1..] == S`: `D[0]` samples stacked on a new axis; outputs are `[N] + out`.

use tinyq_data::{Dataset, NdArray};
use tinyq_ir::{DType, Graph};

use crate::TinyqError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stacking {
    Single,
    Batch,
    NewAxis,
}

/// Data bound to a model's inputs, ready to be cut into samples.
pub struct BoundInputs {
    pub samples: usize,
    data: Vec<Vec<f32>>,
    sample_len: Vec<usize>,
    stacking: Stacking,
}

impl BoundInputs {
    /// The inputs of sample `i`, in model-input order.
    pub fn sample(&self, i: usize) -> Vec<&[f32]> {
        self.data.iter().zip(&self.sample_len).map(|(d, &l)| &d[i * l..(i + 1) * l]).collect()
    }

    /// The array shape that the per-sample outputs of shape `out` form.
    pub fn output_shape(&self, out: &[usize]) -> Vec<usize> {
        match self.stacking {
            Stacking::Single => out.to_vec(),
            Stacking::Batch if out.first() == Some(&1) => std::iter::once(self.samples).chain(out[1..].iter().copied()).collect(),
            Stacking::Batch | Stacking::NewAxis => std::iter::once(self.samples).chain(out.iter().copied()).collect(),
        }
    }

    /// Keeps only the first `n` samples.
    pub fn truncate(&mut self, n: usize) {
        if n < self.samples && self.stacking != Stacking::Single {
            self.samples = n;
            for (d, &l) in self.data.iter_mut().zip(&self.sample_len) {
                d.truncate(n * l);
            }
        }
    }
}

/// The array keys used when the user names none: `x` for one input, the input names otherwise.
pub fn default_input_keys(graph: &Graph) -> Vec<String> {
    if graph.inputs.len() == 1 {
        vec!["x".into()]
    } else {
        graph.inputs.iter().map(|&i| graph.tensor(i).name.clone()).collect()
    }
}

/// Binds arrays `keys` of `data` (one per model input, in order) to the model's inputs.
pub fn bind_inputs(graph: &Graph, data: &Dataset, keys: &[String]) -> Result<BoundInputs, TinyqError> {
    if keys.len() != graph.inputs.len() {
        let names: Vec<&str> = graph.inputs.iter().map(|&i| graph.tensor(i).name.as_str()).collect();
        return Err(TinyqError::Input(format!(
            "the model has {} inputs ({}) but {} data keys were given ({})",
            names.len(),
            names.join(", "),
            keys.len(),
            keys.join(", ")
        )));
    }
    let file = data.path().display().to_string();
    let mut bound: Option<(usize, Stacking)> = None;
    let mut arrays = Vec::new();
    let mut lens = Vec::new();
    for (&id, key) in graph.inputs.iter().zip(keys) {
        let t = graph.tensor(id);
        let arr: NdArray = data.array(key)?;
        if t.dtype == DType::F32 && !matches!(arr.dtype_name(), "float32" | "float64" | "float16") {
            return Err(TinyqError::Input(format!(
                "{file}: array `{key}` is {}, but model input `{}` is float32: convert the data to float (with its preprocessing) first",
                arr.dtype_name(),
                t.name
            )));
        }
        let s = &t.shape;
        let d = &arr.shape;
        let (n, stacking) = if d == s {
            (1, Stacking::Single)
        } else if !s.is_empty() && s[0] == 1 && d.len() == s.len() && d[1..] == s[1..] {
            (d[0], Stacking::Batch)
        } else if d.len() == s.len() + 1 && d[1..] == s[..] {
            (d[0], Stacking::NewAxis)
        } else {
            return Err(TinyqError::Input(format!(
                "{file}: array `{key}` has shape {d:?}, but model input `{}` takes samples of shape {s:?}",
                t.name
            )));
        };
        if n == 0 {
            return Err(TinyqError::Input(format!("{file}: array `{key}` holds no samples")));
        }
        if let Some((n0, _)) = bound {
            if n0 != n {
                return Err(TinyqError::Input(format!("{file}: array `{key}` has {n} samples, the first input's array has {n0}")));
            }
        }
        bound = Some((n, stacking));
        arr.check_finite(&format!("{file}: array `{key}`"))?;
        arrays.push(arr.to_f32());
        lens.push(t.numel());
    }
    let (samples, stacking) = bound.expect("a graph has at least one input");
    Ok(BoundInputs { samples, data: arrays, sample_len: lens, stacking })
}
