//! Many samples per call: [`Int8Plan::run_batch`] runs each node once over all samples of a
//! batch (its weights stay in cache, the conv-like GEMMs get more rows), and one sample at a time
//! for the nodes whose kernel works on one sample. Each sample's values are exactly what
//! [`Int8Plan::run`] computes for it alone: no kernel mixes samples.

use crate::{Int8Error, Int8Plan, TensorValue};

impl TensorValue {
    /// A copy of elements `start..start + len`.
    fn slice(&self, start: usize, len: usize) -> TensorValue {
        match self {
            TensorValue::I8(v) => TensorValue::I8(v[start..start + len].to_vec()),
            TensorValue::F32(v) => TensorValue::F32(v[start..start + len].to_vec()),
            TensorValue::I32(v) => TensorValue::I32(v[start..start + len].to_vec()),
            TensorValue::I16(v) => TensorValue::I16(v[start..start + len].to_vec()),
        }
    }

    /// Copies `part` (same dtype) to elements `start..`.
    fn write_at(&mut self, start: usize, part: &TensorValue) {
        match (self, part) {
            (TensorValue::I8(v), TensorValue::I8(p)) => v[start..start + p.len()].copy_from_slice(p),
            (TensorValue::F32(v), TensorValue::F32(p)) => v[start..start + p.len()].copy_from_slice(p),
            (TensorValue::I32(v), TensorValue::I32(p)) => v[start..start + p.len()].copy_from_slice(p),
            (TensorValue::I16(v), TensorValue::I16(p)) => v[start..start + p.len()].copy_from_slice(p),
            _ => unreachable!("a tensor keeps its dtype"),
        }
    }

    /// `samples` copies of `self`, back to back.
    fn repeat(&self, samples: usize) -> TensorValue {
        let mut out = TensorValue::zeros(self.dtype(), self.len() * samples).expect("a dtype a run holds");
        for j in 0..samples {
            out.write_at(j * self.len(), self);
        }
        out
    }
}

impl Int8Plan {
    /// Runs `samples` samples in one call. Input `i` holds that input of every sample back to
    /// back (`samples` times its size); so does each returned output. The values are those of
    /// [`Int8Plan::run`] on each sample alone.
    pub fn run_batch(&self, inputs: &[TensorValue], samples: usize) -> Result<Vec<TensorValue>, Int8Error> {
        let g = self.graph();
        self.check_inputs(inputs, samples)?;
        if samples == 0 {
            let empty = |o: usize| TensorValue::zeros(g.tensor(o).dtype, 0).expect("dtype checked in prepare");
            return Ok(g.outputs.iter().map(|&o| empty(o)).collect());
        }
        let mut values: Vec<Option<TensorValue>> = vec![None; g.tensors.len()];
        for (&id, value) in g.inputs.iter().zip(inputs) {
            values[id] = Some(value.clone());
        }
        for step in &self.steps {
            let numel = g.tensor(step.output).numel();
            let mut out =
                TensorValue::zeros(g.tensor(step.output).dtype, numel * samples).expect("dtype checked in prepare");
            let all_computed = step.inputs.iter().all(|&i| values[i].is_some());
            if all_computed && step.kernel.takes_many_samples() {
                let args: Vec<&TensorValue> =
                    step.inputs.iter().map(|&i| values[i].as_ref().expect("computed")).collect();
                crate::ops::eval(step, &args, &mut out);
            } else {
                let mut part = TensorValue::zeros(out.dtype(), numel).expect("dtype checked in prepare");
                for j in 0..samples {
                    let args: Vec<TensorValue> = step
                        .inputs
                        .iter()
                        .map(|&i| match &values[i] {
                            Some(v) => v.slice(j * g.tensor(i).numel(), g.tensor(i).numel()),
                            None => self.consts[i].clone().expect("checked in prepare"),
                        })
                        .collect();
                    crate::ops::eval(step, &args.iter().collect::<Vec<_>>(), &mut part);
                    out.write_at(j * numel, &part);
                }
            }
            values[step.output] = Some(out);
        }
        Ok(g.outputs
            .iter()
            .map(|&o| match &values[o] {
                Some(v) => v.clone(),
                None => self.consts[o].as_ref().expect("tensor computed or constant").repeat(samples),
            })
            .collect())
    }
}
