use crate::{numel, DType, TensorData};

/// Quantization parameters exactly as TFLite stores them: per-tensor when `scale` has one entry
/// and `axis` is `None`, per-axis along `axis` otherwise. Real value = `(q - zero_point) * scale`.
#[derive(Clone, Debug, PartialEq)]
pub struct QParams {
    pub scale: Vec<f32>,
    pub zero_point: Vec<i32>,
    pub axis: Option<usize>,
}

/// A tensor of the graph: an activation (no data) or a constant (data inline).
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: DType,
    pub qparams: Option<QParams>,
    pub data: Option<TensorData>,
}

impl Tensor {
    pub fn activation(name: impl Into<String>, shape: Vec<usize>, dtype: DType) -> Tensor {
        Tensor { name: name.into(), shape, dtype, qparams: None, data: None }
    }

    /// A constant; `data.len()` must equal the element count of `shape`.
    pub fn constant(name: impl Into<String>, shape: Vec<usize>, data: TensorData) -> Tensor {
        debug_assert_eq!(numel(&shape), data.len());
        Tensor { name: name.into(), shape, dtype: data.dtype(), qparams: None, data: Some(data) }
    }

    pub fn is_constant(&self) -> bool {
        self.data.is_some()
    }

    pub fn numel(&self) -> usize {
        numel(&self.shape)
    }

    /// Bytes of the tensor as a file or flash holds it (int4 packed two per byte).
    pub fn size_bytes(&self) -> usize {
        self.dtype.packed_bytes(self.numel())
    }

    /// The constant's values as f32, if this is a constant.
    pub fn f32_data(&self) -> Option<Vec<f32>> {
        self.data.as_ref().map(|d| d.to_f32())
    }
}
