//! How data arrays map to model inputs.
//!
//! With model input shape `S` and data array shape `D`:
//! - `D == S`: one sample; outputs keep the model's output shapes.
//! - `S[0] == 1` and `D[1..] == S[1..]`: `D[0]` samples along the batch axis; outputs are
//!   `[N] + out[1..]`.
//! - `D[1..] == S`: `D[0]` samples stacked on a new axis; outputs are `[N] + out`.
//!
//! A float input takes float data. An int8 (int16) input takes int8 (int16) data as-is, or float
//! data quantized with the input's scale and zero point exactly as TFLite's QUANTIZE does (float
//! division, rounding half away from zero, saturation).

use tinyq_data::{ArrayData, Dataset, NdArray};
use tinyq_ir::{DType, Graph};

use crate::TinyqError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stacking {
    Single,
    Batch,
    NewAxis,
}

/// The values of one model input over all samples, in the input's dtype.
enum InputData {
    F32(Vec<f32>),
    I8(Vec<i8>),
    I16(Vec<i16>),
}

impl InputData {
    /// Elements `range` of the data.
    fn slice(&self, range: std::ops::Range<usize>) -> SampleRef<'_> {
        match self {
            InputData::F32(v) => SampleRef::F32(&v[range]),
            InputData::I8(v) => SampleRef::I8(&v[range]),
            InputData::I16(v) => SampleRef::I16(&v[range]),
        }
    }

    /// The samples `picks` (each `len` elements), in that order.
    fn pick(&self, picks: &[usize], len: usize) -> InputData {
        fn gather<T: Copy>(v: &[T], picks: &[usize], len: usize) -> Vec<T> {
            picks.iter().flat_map(|&i| v[i * len..(i + 1) * len].iter().copied()).collect()
        }
        match self {
            InputData::F32(v) => InputData::F32(gather(v, picks, len)),
            InputData::I8(v) => InputData::I8(gather(v, picks, len)),
            InputData::I16(v) => InputData::I16(gather(v, picks, len)),
        }
    }

    fn truncate(&mut self, n: usize) {
        match self {
            InputData::F32(v) => v.truncate(n),
            InputData::I8(v) => v.truncate(n),
            InputData::I16(v) => v.truncate(n),
        }
    }
}

/// One sample's value for one input.
#[derive(Clone, Copy, Debug)]
pub enum SampleRef<'a> {
    F32(&'a [f32]),
    I8(&'a [i8]),
    I16(&'a [i16]),
}

impl SampleRef<'_> {
    /// The value the integer engine takes for this input.
    pub fn to_value(self) -> tinyq_int8::TensorValue {
        match self {
            SampleRef::F32(v) => tinyq_int8::TensorValue::F32(v.to_vec()),
            SampleRef::I8(v) => tinyq_int8::TensorValue::I8(v.to_vec()),
            SampleRef::I16(v) => tinyq_int8::TensorValue::I16(v.to_vec()),
        }
    }
}

/// Data bound to a model's inputs, ready to be cut into samples.
pub struct BoundInputs {
    pub samples: usize,
    data: Vec<InputData>,
    sample_len: Vec<usize>,
    stacking: Stacking,
}

impl BoundInputs {
    /// The inputs of sample `i`, in model-input order.
    pub fn sample(&self, i: usize) -> Vec<SampleRef<'_>> {
        self.data.iter().zip(&self.sample_len).map(|(d, &l)| d.slice(i * l..(i + 1) * l)).collect()
    }

    /// Samples `range`, back to back, of each input.
    pub fn samples(&self, range: std::ops::Range<usize>) -> Vec<SampleRef<'_>> {
        self.data.iter().zip(&self.sample_len).map(|(d, &l)| d.slice(range.start * l..range.end * l)).collect()
    }

    /// The float inputs of sample `i` (`None` if an input is integer).
    pub fn sample_f32(&self, i: usize) -> Option<Vec<&[f32]>> {
        self.sample(i).into_iter().map(|s| if let SampleRef::F32(v) = s { Some(v) } else { None }).collect()
    }

    /// The array shape that the per-sample outputs of shape `out` form.
    pub fn output_shape(&self, out: &[usize]) -> Vec<usize> {
        match self.stacking {
            Stacking::Single => out.to_vec(),
            Stacking::Batch if out.first() == Some(&1) => {
                std::iter::once(self.samples).chain(out[1..].iter().copied()).collect()
            }
            Stacking::Batch | Stacking::NewAxis => std::iter::once(self.samples).chain(out.iter().copied()).collect(),
        }
    }

    /// The same samples bound to `graph`, whose inputs have the same shapes (e.g. the int8
    /// version of the model these were bound to): float data for an int8 input is quantized
    /// with the input's scale and zero point.
    pub fn rebind(&self, graph: &Graph) -> Result<BoundInputs, TinyqError> {
        let data = self
            .data
            .iter()
            .zip(&graph.inputs)
            .map(|(d, &id)| {
                let t = graph.tensor(id);
                Ok(match (d, t.dtype) {
                    (InputData::F32(v), DType::I8 | DType::I16) => quantize_for(t, v)?,
                    (InputData::F32(v), DType::F32) => InputData::F32(v.clone()),
                    (InputData::I8(v), DType::I8) => InputData::I8(v.clone()),
                    (InputData::I16(v), DType::I16) => InputData::I16(v.clone()),
                    _ => {
                        return Err(TinyqError::Input(format!(
                            "model input `{}` is {}: the data does not fit it",
                            t.name,
                            t.dtype.name()
                        )))
                    }
                })
            })
            .collect::<Result<_, TinyqError>>()?;
        Ok(BoundInputs { samples: self.samples, data, sample_len: self.sample_len.clone(), stacking: self.stacking })
    }

    /// At most `n` samples spread evenly over these (all of them when there are no more than `n`),
    /// e.g. calibration samples taken from a training set that may be sorted.
    pub fn spread(&self, n: usize) -> BoundInputs {
        let picks = self.spread_picks(n);
        let data = self.data.iter().zip(&self.sample_len).map(|(d, &l)| d.pick(&picks, l)).collect();
        BoundInputs { samples: picks.len(), data, sample_len: self.sample_len.clone(), stacking: self.stacking }
    }

    /// The indices of the samples [`BoundInputs::spread`] keeps, in order.
    pub fn spread_picks(&self, n: usize) -> Vec<usize> {
        if n >= self.samples || self.stacking == Stacking::Single {
            (0..self.samples).collect()
        } else {
            (0..n).map(|k| k * self.samples / n).collect()
        }
    }

    /// The samples `picks` (indices into these), in that order.
    pub fn subset(&self, picks: &[usize]) -> BoundInputs {
        let data = self.data.iter().zip(&self.sample_len).map(|(d, &l)| d.pick(picks, l)).collect();
        BoundInputs { samples: picks.len(), data, sample_len: self.sample_len.clone(), stacking: self.stacking }
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
        // A mismatched shape is refused from the header, before a large array is inflated.
        if let Some(d) = data.array_shape(key).filter(|d| stacking(d, &t.shape).is_none()) {
            return Err(shape_mismatch(&file, key, &d, t));
        }
        let arr: NdArray = data.array(key)?;
        let float_data = matches!(arr.dtype_name(), "float32" | "float64" | "float16");
        let wrong = match t.dtype {
            DType::F32 => !float_data,
            DType::I8 | DType::I16 => !float_data && arr.dtype_name() != t.dtype.name(),
            _ => true,
        };
        if wrong {
            let hint = match t.dtype {
                DType::I8 | DType::I16 => {
                    format!("pass {} data, or float data to be quantized with the input's scale", t.dtype.name())
                }
                _ => "convert the data to float (with its preprocessing) first".to_string(),
            };
            return Err(TinyqError::Input(format!(
                "{file}: array `{key}` is {}, but model input `{}` is {}: {hint}",
                arr.dtype_name(),
                t.name,
                t.dtype.name(),
            )));
        }
        let s = &t.shape;
        let d = &arr.shape;
        let Some((n, stacking)) = stacking(d, s) else {
            return Err(shape_mismatch(&file, key, d, t));
        };
        if n == 0 {
            return Err(TinyqError::Input(format!("{file}: array `{key}` holds no samples")));
        }
        if let Some((n0, _)) = bound {
            if n0 != n {
                return Err(TinyqError::Input(format!(
                    "{file}: array `{key}` has {n} samples, the first input's array has {n0}"
                )));
            }
        }
        bound = Some((n, stacking));
        arr.check_finite(&format!("{file}: array `{key}`"))?;
        arrays.push(match (t.dtype, &arr.data) {
            (DType::I8, ArrayData::I8(v)) => InputData::I8(v.clone()),
            (DType::I16, ArrayData::I16(v)) => InputData::I16(v.clone()),
            (DType::I8 | DType::I16, _) => quantize_for(t, &arr.to_f32())?,
            _ => InputData::F32(arr.to_f32()),
        });
        lens.push(t.numel());
    }
    let (samples, stacking) = bound.expect("a graph has at least one input");
    Ok(BoundInputs { samples, data: arrays, sample_len: lens, stacking })
}

/// How an array of shape `d` holds samples of shape `s`: the sample count and the stacking.
fn stacking(d: &[usize], s: &[usize]) -> Option<(usize, Stacking)> {
    if d == s {
        Some((1, Stacking::Single))
    } else if !s.is_empty() && s[0] == 1 && d.len() == s.len() && d[1..] == s[1..] {
        Some((d[0], Stacking::Batch))
    } else if d.len() == s.len() + 1 && d[1..] == s[..] {
        Some((d[0], Stacking::NewAxis))
    } else {
        None
    }
}

fn shape_mismatch(file: &str, key: &str, d: &[usize], t: &tinyq_ir::Tensor) -> TinyqError {
    TinyqError::Input(format!(
        "{file}: array `{key}` has shape {d:?}, but model input `{}` takes samples of shape {:?}",
        t.name, t.shape
    ))
}

/// TFLite's QUANTIZE of float data: `clamp(round_half_away(x / scale) + zero_point)`, the division
/// in float32.
/// Float data for an int8 or int16 model input `t`, quantized with its per-tensor parameters.
fn quantize_for(t: &tinyq_ir::Tensor, x: &[f32]) -> Result<InputData, TinyqError> {
    let q = t.qparams.as_ref().filter(|q| q.scale.len() == 1).ok_or_else(|| {
        TinyqError::Input(format!("model input `{}` is {} without per-tensor quantization", t.name, t.dtype.name()))
    })?;
    Ok(match t.dtype {
        DType::I16 => InputData::I16(quantize_s16(x, q.scale[0], q.zero_point[0])),
        _ => InputData::I8(quantize_s8(x, q.scale[0], q.zero_point[0])),
    })
}

pub fn quantize_s8(x: &[f32], scale: f32, zero_point: i32) -> Vec<i8> {
    x.iter().map(|&v| tinyq_quant::round_i32(v / scale).wrapping_add(zero_point).clamp(-128, 127) as i8).collect()
}

/// [`quantize_s8`] for an int16 tensor.
pub fn quantize_s16(x: &[f32], scale: f32, zero_point: i32) -> Vec<i16> {
    x.iter().map(|&v| tinyq_quant::round_i32(v / scale).wrapping_add(zero_point).clamp(-32768, 32767) as i16).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tinyq_data::{write_npz, LoadOptions};
    use tinyq_ir::{QParams, Tensor};

    fn graph(dtype: DType, qparams: Option<QParams>) -> Graph {
        let mut g = Graph::default();
        let mut t = Tensor::activation("x", vec![1, 3], dtype);
        t.qparams = qparams;
        let x = g.add_tensor(t);
        g.inputs = vec![x];
        g.outputs = vec![x];
        g
    }

    /// Five samples `[i, i + 0.25, i + 0.5]` bound to a float `[1, 3]` input (`tag` keeps the
    /// file of each test apart, as tests run in parallel).
    fn five_samples(tag: &str) -> BoundInputs {
        let path = std::env::temp_dir().join(format!("tinyq-inputs-{}-{tag}.npz", std::process::id()));
        let values: Vec<f32> = (0..5).flat_map(|i| [i as f32, i as f32 + 0.25, i as f32 + 0.5]).collect();
        let x = NdArray { shape: vec![5, 3], data: ArrayData::F32(values) };
        write_npz(&path, &[("x", &x)]).unwrap();
        let ds = Dataset::open(&path, &LoadOptions::default()).unwrap();
        let bound = bind_inputs(&graph(DType::F32, None), &ds, &["x".into()]).unwrap();
        std::fs::remove_file(&path).unwrap();
        bound
    }

    #[test]
    fn spread_picks_evenly_and_keeps_all_when_asked_for_more() {
        let b = five_samples("spread");
        let s = b.spread(2);
        assert_eq!(s.samples, 2);
        assert_eq!(s.sample_f32(0).unwrap()[0], &[0.0, 0.25, 0.5]);
        assert_eq!(s.sample_f32(1).unwrap()[0], &[2.0, 2.25, 2.5]);
        let all = b.spread(9);
        assert_eq!(all.samples, 5);
        assert_eq!(all.sample_f32(4).unwrap()[0], &[4.0, 4.25, 4.5]);
    }

    #[test]
    fn rebind_quantizes_float_data_for_an_int8_input() {
        let b = five_samples("rebind");
        let q = QParams { scale: vec![0.25], zero_point: vec![-3], axis: None };
        let r = b.rebind(&graph(DType::I8, Some(q))).unwrap();
        let SampleRef::I8(v) = r.sample(3)[0] else { panic!("int8 sample") };
        assert_eq!(v, &[9, 10, 11]);
        assert!(b.rebind(&graph(DType::I8, None)).is_err(), "an int8 input without per-tensor parameters");
    }
}
