use half::f16;

/// Element type of a tensor. Quantization parameters are not part of it (see [`crate::QParams`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    F16,
    /// 4-bit signed weights (TFLite `INT4`). A constant holds them unpacked as
    /// [`TensorData::I8`] values in [`I4_MIN`]`..=`[`I4_MAX`]; formats pack two per byte.
    I4,
    I8,
    U8,
    I16,
    I32,
    I64,
}

impl DType {
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "float32",
            DType::F16 => "float16",
            DType::I4 => "int4",
            DType::I8 => "int8",
            DType::U8 => "uint8",
            DType::I16 => "int16",
            DType::I32 => "int32",
            DType::I64 => "int64",
        }
    }

    /// Bytes one element takes in memory (an int4 value is held in one byte; see
    /// [`DType::packed_bytes`] for its size in a file).
    pub fn size_bytes(self) -> usize {
        match self {
            DType::I4 | DType::I8 | DType::U8 => 1,
            DType::F16 | DType::I16 => 2,
            DType::F32 | DType::I32 => 4,
            DType::I64 => 8,
        }
    }

    /// Bytes `numel` elements take in a file and in flash: int4 packs two per byte (the last
    /// byte half used when `numel` is odd), every other type takes [`DType::size_bytes`] each.
    pub fn packed_bytes(self, numel: usize) -> usize {
        match self {
            DType::I4 => numel.div_ceil(2),
            _ => numel * self.size_bytes(),
        }
    }

    /// The [`TensorData`] type a constant of this dtype holds: int8 for int4, itself otherwise.
    pub fn storage(self) -> DType {
        match self {
            DType::I4 => DType::I8,
            _ => self,
        }
    }
}

/// The range of a signed 4-bit value.
pub const I4_MIN: i8 = -8;
pub const I4_MAX: i8 = 7;

/// The values of a constant tensor, row-major.
#[derive(Clone, Debug, PartialEq)]
pub enum TensorData {
    F32(Vec<f32>),
    F16(Vec<f16>),
    I8(Vec<i8>),
    U8(Vec<u8>),
    I16(Vec<i16>),
    I32(Vec<i32>),
    I64(Vec<i64>),
}

impl TensorData {
    pub fn dtype(&self) -> DType {
        match self {
            TensorData::F32(_) => DType::F32,
            TensorData::F16(_) => DType::F16,
            TensorData::I8(_) => DType::I8,
            TensorData::U8(_) => DType::U8,
            TensorData::I16(_) => DType::I16,
            TensorData::I32(_) => DType::I32,
            TensorData::I64(_) => DType::I64,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            TensorData::F32(v) => v.len(),
            TensorData::F16(v) => v.len(),
            TensorData::I8(v) => v.len(),
            TensorData::U8(v) => v.len(),
            TensorData::I16(v) => v.len(),
            TensorData::I32(v) => v.len(),
            TensorData::I64(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values as f32 (integers converted exactly where representable, f16 widened).
    pub fn to_f32(&self) -> Vec<f32> {
        match self {
            TensorData::F32(v) => v.clone(),
            TensorData::F16(v) => v.iter().map(|x| x.to_f32()).collect(),
            TensorData::I8(v) => v.iter().map(|&x| x as f32).collect(),
            TensorData::U8(v) => v.iter().map(|&x| x as f32).collect(),
            TensorData::I16(v) => v.iter().map(|&x| x as f32).collect(),
            TensorData::I32(v) => v.iter().map(|&x| x as f32).collect(),
            TensorData::I64(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }

    /// The values as i64 (floats truncated toward zero).
    pub fn to_i64(&self) -> Vec<i64> {
        match self {
            TensorData::F32(v) => v.iter().map(|&x| x as i64).collect(),
            TensorData::F16(v) => v.iter().map(|x| x.to_f32() as i64).collect(),
            TensorData::I8(v) => v.iter().map(|&x| x as i64).collect(),
            TensorData::U8(v) => v.iter().map(|&x| x as i64).collect(),
            TensorData::I16(v) => v.iter().map(|&x| x as i64).collect(),
            TensorData::I32(v) => v.iter().map(|&x| x as i64).collect(),
            TensorData::I64(v) => v.clone(),
        }
    }

    /// Gathers elements by flat index (used to permute constants without caring about dtype).
    pub fn gather(&self, idx: &[usize]) -> TensorData {
        fn g<T: Copy>(v: &[T], idx: &[usize]) -> Vec<T> {
            idx.iter().map(|&i| v[i]).collect()
        }
        match self {
            TensorData::F32(v) => TensorData::F32(g(v, idx)),
            TensorData::F16(v) => TensorData::F16(g(v, idx)),
            TensorData::I8(v) => TensorData::I8(g(v, idx)),
            TensorData::U8(v) => TensorData::U8(g(v, idx)),
            TensorData::I16(v) => TensorData::I16(g(v, idx)),
            TensorData::I32(v) => TensorData::I32(g(v, idx)),
            TensorData::I64(v) => TensorData::I64(g(v, idx)),
        }
    }
}
