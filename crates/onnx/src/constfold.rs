//! Import-time evaluation of ONNX ops whose inputs are all constants (shape subgraphs such as
//! Shape→Gather→Unsqueeze→Concat→Reshape, and constant arithmetic on weights).

use tinyq_ir::{numel, TensorData};

use crate::proto::TensorProto;

/// A constant in ONNX semantics: ONNX layout, ONNX shape.
#[derive(Clone, Debug, PartialEq)]
pub struct Const {
    pub shape: Vec<usize>,
    pub data: TensorData,
}

impl Const {
    pub fn i64s(v: Vec<i64>) -> Const {
        Const { shape: vec![v.len()], data: TensorData::I64(v) }
    }

    pub fn f32(shape: Vec<usize>, v: Vec<f32>) -> Const {
        Const { shape, data: TensorData::F32(v) }
    }

    pub fn is_int(&self) -> bool {
        !matches!(self.data, TensorData::F32(_) | TensorData::F16(_))
    }

    pub fn reshaped(&self, shape: Vec<usize>) -> Const {
        Const { shape, data: self.data.clone() }
    }

    /// Row-major transpose: output axis `i` is input axis `perm[i]`.
    pub fn transposed(&self, perm: &[usize]) -> Const {
        let shape: Vec<usize> = perm.iter().map(|&p| self.shape[p]).collect();
        Const { data: self.data.gather(&transpose_index(&self.shape, perm)), shape }
    }
}

/// Flat source index of every output element of a transpose, in output order.
pub fn transpose_index(shape: &[usize], perm: &[usize]) -> Vec<usize> {
    let rank = shape.len();
    let mut in_strides = vec![1usize; rank];
    for i in (0..rank.saturating_sub(1)).rev() {
        in_strides[i] = in_strides[i + 1] * shape[i + 1];
    }
    let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    let strides: Vec<usize> = perm.iter().map(|&p| in_strides[p]).collect();
    strided_index(&out_shape, &strides)
}

/// The flat source offset `sum(pos[i] * strides[i])` of every position of `shape`, row-major.
fn strided_index(shape: &[usize], strides: &[usize]) -> Vec<usize> {
    let rank = shape.len();
    let mut idx = Vec::with_capacity(numel(shape));
    let mut pos = vec![0usize; rank];
    for _ in 0..numel(shape) {
        idx.push(pos.iter().zip(strides).map(|(p, s)| p * s).sum());
        for ax in (0..rank).rev() {
            pos[ax] += 1;
            if pos[ax] < shape[ax] {
                break;
            }
            pos[ax] = 0;
        }
    }
    idx
}

/// Decodes an ONNX tensor (raw_data or typed fields) into a constant.
pub fn from_proto(t: &TensorProto) -> Result<Const, String> {
    let shape = tinyq_ir::size::shape(&t.dims, 4)?;
    let n = numel(&shape);
    let raw = &t.raw_data;
    fn le<const W: usize, T>(raw: &[u8], n: usize, f: fn([u8; W]) -> T) -> Result<Vec<T>, String> {
        if raw.len() != n * W {
            return Err(format!("raw data has {} bytes, {n} elements need {}", raw.len(), n * W));
        }
        Ok(raw.chunks_exact(W).map(|c| f(c.try_into().unwrap())).collect())
    }
    let from_raw = !raw.is_empty() || n == 0;
    let data = match t.data_type {
        1 if from_raw => TensorData::F32(le(raw, n, f32::from_le_bytes)?),
        1 => TensorData::F32(t.float_data.clone()),
        2 if from_raw => TensorData::U8(raw.clone()),
        2 => TensorData::U8(t.int32_data.iter().map(|&v| v as u8).collect()),
        3 if from_raw => TensorData::I8(raw.iter().map(|&b| b as i8).collect()),
        3 => TensorData::I8(t.int32_data.iter().map(|&v| v as i8).collect()),
        5 if from_raw => TensorData::I16(le(raw, n, i16::from_le_bytes)?),
        5 => TensorData::I16(t.int32_data.iter().map(|&v| v as i16).collect()),
        6 if from_raw => TensorData::I32(le(raw, n, i32::from_le_bytes)?),
        6 => TensorData::I32(t.int32_data.clone()),
        7 if from_raw => TensorData::I64(le(raw, n, i64::from_le_bytes)?),
        7 => TensorData::I64(t.int64_data.clone()),
        9 if from_raw => TensorData::U8(raw.clone()),
        9 => TensorData::U8(t.int32_data.iter().map(|&v| v as u8).collect()),
        10 if from_raw => TensorData::F16(le(raw, n, half::f16::from_le_bytes)?),
        10 => TensorData::F16(t.int32_data.iter().map(|&v| half::f16::from_bits(v as u16)).collect()),
        11 if from_raw => TensorData::F32(le(raw, n, |b| f64::from_le_bytes(b) as f32)?),
        11 => TensorData::F32(t.double_data.iter().map(|&v| v as f32).collect()),
        other => return Err(format!("element type {} is not supported", elem_type_name(other))),
    };
    if data.len() != n {
        return Err(format!("has {} values for shape {shape:?}", data.len()));
    }
    Ok(Const { shape, data })
}

pub fn elem_type_name(t: i32) -> &'static str {
    match t {
        1 => "float32",
        2 => "uint8",
        3 => "int8",
        4 => "uint16",
        5 => "int16",
        6 => "int32",
        7 => "int64",
        8 => "string",
        9 => "bool",
        10 => "float16",
        11 => "float64",
        12 => "uint32",
        13 => "uint64",
        16 => "bfloat16",
        _ => "an unknown type",
    }
}

/// numpy-style broadcasting element-wise op on constants (ints stay ints).
pub fn binary(a: &Const, b: &Const, f: fn(f64, f64) -> f64) -> Result<Const, String> {
    let shape = tinyq_ir::op::broadcast_shapes(&a.shape, &b.shape)?;
    tinyq_ir::size::tensor_numel(&shape, 8)?;
    let ia = broadcast_index(&a.shape, &shape);
    let ib = broadcast_index(&b.shape, &shape);
    let (va, vb) = (as_f64(&a.data), as_f64(&b.data));
    let out: Vec<f64> = ia.iter().zip(&ib).map(|(&i, &j)| f(va[i], vb[j])).collect();
    let data = if a.is_int() && b.is_int() {
        TensorData::I64(out.iter().map(|&v| v as i64).collect())
    } else {
        TensorData::F32(out.iter().map(|&v| v as f32).collect())
    };
    Ok(Const { shape, data })
}

fn as_f64(d: &TensorData) -> Vec<f64> {
    match d {
        TensorData::I64(v) => v.iter().map(|&x| x as f64).collect(),
        other => other.to_f32().into_iter().map(|x| x as f64).collect(),
    }
}

/// For each element of `out` (row-major), the flat index into a tensor of `shape` broadcast to it.
pub fn broadcast_index(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let rank = out.len();
    let padded: Vec<usize> = std::iter::repeat_n(1, rank - shape.len()).chain(shape.iter().copied()).collect();
    let mut strides = vec![0usize; rank];
    let mut s = 1;
    for i in (0..rank).rev() {
        strides[i] = if padded[i] == 1 { 0 } else { s };
        s *= padded[i];
    }
    strided_index(out, &strides)
}

/// Normalizes a possibly negative axis against `rank`.
pub fn axis(a: i64, rank: usize) -> Result<usize, String> {
    let r = rank as i64;
    if a < -r || a >= r {
        return Err(format!("axis {a} is out of range for rank {rank}"));
    }
    Ok(if a < 0 { (a + r) as usize } else { a as usize })
}

/// ONNX Gather along `axis` of constants.
pub fn gather(data: &Const, indices: &Const, axis_: usize) -> Result<Const, String> {
    let idx = indices.data.to_i64();
    let dim = data.shape[axis_] as i64;
    let outer: usize = data.shape[..axis_].iter().product();
    let inner: usize = data.shape[axis_ + 1..].iter().product();
    let mut flat = Vec::new();
    for o in 0..outer {
        for &i in &idx {
            let i = if i < 0 { i + dim } else { i };
            if i < 0 || i >= dim {
                return Err(format!("index {i} out of range for dimension {dim}"));
            }
            let base = (o * data.shape[axis_] + i as usize) * inner;
            flat.extend(base..base + inner);
        }
    }
    let shape = data.shape[..axis_].iter().chain(&indices.shape).chain(&data.shape[axis_ + 1..]).copied().collect();
    Ok(Const { shape, data: data.data.gather(&flat) })
}

/// ONNX Concat of constants along `axis`.
pub fn concat(parts: &[Const], axis_: usize) -> Result<Const, String> {
    let first = &parts[0];
    let outer: usize = first.shape[..axis_].iter().product();
    let mut shape = first.shape.clone();
    shape[axis_] = parts.iter().map(|p| p.shape[axis_]).sum();
    let as_int = parts.iter().all(Const::is_int);
    let mut out_i = Vec::new();
    let mut out_f = Vec::new();
    for o in 0..outer {
        for p in parts {
            if p.shape.len() != first.shape.len() {
                return Err("inputs differ in rank".into());
            }
            let block: usize = p.shape[axis_..].iter().product();
            if as_int {
                out_i.extend_from_slice(&p.data.to_i64()[o * block..(o + 1) * block]);
            } else {
                out_f.extend_from_slice(&p.data.to_f32()[o * block..(o + 1) * block]);
            }
        }
    }
    let data = if as_int { TensorData::I64(out_i) } else { TensorData::F32(out_f) };
    Ok(Const { shape, data })
}

/// ONNX Slice of a constant with resolved `starts`, `ends`, `axes`, `steps`.
pub fn slice(data: &Const, starts: &[i64], ends: &[i64], axes: &[usize], steps: &[i64]) -> Result<Const, String> {
    let rank = data.shape.len();
    let mut ranges: Vec<Vec<usize>> = data.shape.iter().map(|&d| (0..d).collect()).collect();
    for (k, &ax) in axes.iter().enumerate() {
        let d = data.shape[ax] as i64;
        let step = steps.get(k).copied().unwrap_or(1);
        if step == 0 {
            return Err("slice step 0".into());
        }
        let clampi = |v: i64, lo: i64, hi: i64| v.clamp(lo, hi);
        let norm = |v: i64| if v < 0 { v + d } else { v };
        let (s, e) = if step > 0 {
            (clampi(norm(starts[k]), 0, d), clampi(norm(ends[k]), 0, d))
        } else {
            (clampi(norm(starts[k]), -1, d - 1), clampi(norm(ends[k]), -1, d - 1))
        };
        let mut v = Vec::new();
        let mut i = s;
        while (step > 0 && i < e) || (step < 0 && i > e) {
            v.push(i as usize);
            i += step;
        }
        ranges[ax] = v;
    }
    let shape: Vec<usize> = ranges.iter().map(Vec::len).collect();
    let mut strides = vec![1usize; rank];
    for i in (0..rank.saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * data.shape[i + 1];
    }
    let mut flat = Vec::with_capacity(numel(&shape));
    let mut pos = vec![0usize; rank];
    for _ in 0..numel(&shape) {
        flat.push(pos.iter().enumerate().map(|(a, &p)| ranges[a][p] * strides[a]).sum());
        for ax in (0..rank).rev() {
            pos[ax] += 1;
            if pos[ax] < shape[ax] {
                break;
            }
            pos[ax] = 0;
        }
    }
    Ok(Const { shape, data: data.data.gather(&flat) })
}
