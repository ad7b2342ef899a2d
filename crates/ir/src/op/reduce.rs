//! Mean over axes: ONNX `ReduceMean`/`GlobalAveragePool`, TFLite `MEAN` (`reference/reduce.h`).

/// Inputs: data. `axes` sorted and unique.
#[derive(Clone, Debug, PartialEq)]
pub struct Mean {
    pub axes: Vec<usize>,
    pub keep_dims: bool,
}

impl Mean {
    pub fn output_shape(&self, x: &[usize]) -> Result<Vec<usize>, String> {
        if let Some(&a) = self.axes.iter().find(|&&a| a >= x.len()) {
            return Err(format!("axis {a} out of range for rank {}", x.len()));
        }
        Ok(x.iter()
            .enumerate()
            .filter_map(|(i, &d)| match (self.axes.contains(&i), self.keep_dims) {
                (false, _) => Some(d),
                (true, true) => Some(1),
                (true, false) => None,
            })
            .collect())
    }
}
