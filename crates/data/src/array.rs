//! In-memory arrays and their element types.

use crate::DataError;

/// Flat element storage of an [`NdArray`], one variant per supported dtype.
#[derive(Debug, Clone, PartialEq)]
pub enum ArrayData {
    F32(Vec<f32>),
    F64(Vec<f64>),
    U8(Vec<u8>),
    I8(Vec<i8>),
    I16(Vec<i16>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    Bool(Vec<bool>),
}

/// Runs `$e` with `$v` bound to the vector inside any [`ArrayData`] variant.
macro_rules! each {
    ($data:expr, $v:ident => $e:expr) => {
        match $data {
            ArrayData::F32($v) => $e,
            ArrayData::F64($v) => $e,
            ArrayData::U8($v) => $e,
            ArrayData::I8($v) => $e,
            ArrayData::I16($v) => $e,
            ArrayData::I32($v) => $e,
            ArrayData::I64($v) => $e,
            ArrayData::Bool($v) => $e,
        }
    };
}

/// An n-dimensional array in row-major (C) order.
///
/// `shape.iter().product()` equals the number of elements in `data` for every array
/// this crate returns; [`write_npz`](crate::write_npz) rejects arrays where it does not.
#[derive(Debug, Clone, PartialEq)]
pub struct NdArray {
    pub shape: Vec<usize>,
    pub data: ArrayData,
}

impl NdArray {
    /// Number of elements (not bytes).
    pub fn len(&self) -> usize {
        each!(&self.data, v => v.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The numpy name of the element type: "float32", "float64", "uint8", "int8",
    /// "int16", "int32", "int64" or "bool".
    pub fn dtype_name(&self) -> &'static str {
        self.data.dtype().name()
    }

    /// All elements as `f32`. Exact for float32, (u)int8, int16 and bool (0/1);
    /// float64, int32 and int64 round to the nearest `f32`.
    pub fn to_f32(&self) -> Vec<f32> {
        each!(&self.data, v => v.iter().map(|x| x.to_f32()).collect())
    }

    /// All elements as `i64`, or `None` if the data is floating point and some value
    /// is not an integer (or NaN/infinite, or outside the `i64` range). Bool gives 0/1.
    pub fn to_i64(&self) -> Option<Vec<i64>> {
        each!(&self.data, v => v.iter().map(|x| x.to_i64()).collect())
    }

    /// Fails with [`DataError::NonFinite`] naming `what`, the first flat index holding
    /// a NaN or infinity, and that value. Integer and bool data always pass.
    pub fn check_finite(&self, what: &str) -> Result<(), DataError> {
        let bad = match &self.data {
            ArrayData::F32(v) => v.iter().position(|x| !x.is_finite()).map(|i| (i, v[i] as f64)),
            ArrayData::F64(v) => v.iter().position(|x| !x.is_finite()).map(|i| (i, v[i])),
            _ => None,
        };
        match bad {
            Some((index, value)) => Err(DataError::NonFinite { what: what.to_string(), index, value }),
            None => Ok(()),
        }
    }
}

/// Element types this crate reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DType {
    F32,
    F64,
    U8,
    I8,
    I16,
    I32,
    I64,
    Bool,
}

/// Each dtype with its numpy name and `.npy` type code (kind + byte size).
const DTYPES: [(DType, &str, &str); 8] = [
    (DType::F32, "float32", "f4"),
    (DType::F64, "float64", "f8"),
    (DType::U8, "uint8", "u1"),
    (DType::I8, "int8", "i1"),
    (DType::I16, "int16", "i2"),
    (DType::I32, "int32", "i4"),
    (DType::I64, "int64", "i8"),
    (DType::Bool, "bool", "b1"),
];

pub(crate) const DTYPE_NAMES: &str = "float32, float64, uint8, int8, int16, int32, int64, bool";

impl DType {
    fn entry(self) -> (DType, &'static str, &'static str) {
        DTYPES[self as usize]
    }

    pub(crate) fn name(self) -> &'static str {
        self.entry().1
    }

    /// The `.npy` type code without byte order, e.g. `f4`.
    pub(crate) fn npy_code(self) -> &'static str {
        self.entry().2
    }

    pub(crate) fn size(self) -> usize {
        (self.npy_code().as_bytes()[1] - b'0') as usize
    }

    pub(crate) fn from_name(name: &str) -> Option<DType> {
        DTYPES.iter().find(|e| e.1 == name).map(|e| e.0)
    }

    pub(crate) fn from_npy_code(code: &str) -> Option<DType> {
        DTYPES.iter().find(|e| e.2 == code).map(|e| e.0)
    }

    /// Decodes packed elements; a trailing partial element is ignored.
    pub(crate) fn decode(self, bytes: &[u8], big_endian: bool) -> ArrayData {
        fn read<T: Elem>(bytes: &[u8], big: bool) -> Vec<T> {
            bytes.chunks_exact(std::mem::size_of::<T>()).map(|c| T::read(c, big)).collect()
        }
        let b = big_endian;
        match self {
            DType::F32 => ArrayData::F32(read(bytes, b)),
            DType::F64 => ArrayData::F64(read(bytes, b)),
            DType::U8 => ArrayData::U8(bytes.to_vec()),
            DType::I8 => ArrayData::I8(read(bytes, b)),
            DType::I16 => ArrayData::I16(read(bytes, b)),
            DType::I32 => ArrayData::I32(read(bytes, b)),
            DType::I64 => ArrayData::I64(read(bytes, b)),
            DType::Bool => ArrayData::Bool(read(bytes, b)),
        }
    }
}

impl ArrayData {
    pub(crate) fn dtype(&self) -> DType {
        fn of<T: Elem>(_: &[T]) -> DType {
            T::DTYPE
        }
        each!(self, v => of(v))
    }

    /// Little-endian packed bytes, as stored in `.npy` files.
    pub(crate) fn to_le_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.dtype().size() * each!(self, v => v.len()));
        each!(self, v => v.iter().for_each(|x| x.put_le(&mut out)));
        out
    }
}

/// Per-element conversions behind [`ArrayData`]'s methods.
trait Elem: Copy {
    const DTYPE: DType;
    /// `bytes` holds exactly one element.
    fn read(bytes: &[u8], big_endian: bool) -> Self;
    fn put_le(self, out: &mut Vec<u8>);
    fn to_f32(self) -> f32;
    fn to_i64(self) -> Option<i64>;
}

fn float_to_i64(x: f64) -> Option<i64> {
    const LIMIT: f64 = 9_223_372_036_854_775_808.0; // 2^63
    (x.fract() == 0.0 && (-LIMIT..LIMIT).contains(&x)).then_some(x as i64)
}

macro_rules! elem {
    ($t:ty, $dt:ident, |$x:ident| $to_i64:expr) => {
        impl Elem for $t {
            const DTYPE: DType = DType::$dt;
            fn read(bytes: &[u8], big_endian: bool) -> Self {
                let mut a = [0u8; std::mem::size_of::<$t>()];
                a.copy_from_slice(bytes);
                let from = if big_endian { <$t>::from_be_bytes } else { <$t>::from_le_bytes };
                from(a)
            }
            fn put_le(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn to_f32(self) -> f32 {
                self as f32
            }
            fn to_i64(self) -> Option<i64> {
                let $x = self;
                $to_i64
            }
        }
    };
}

elem!(f32, F32, |x| float_to_i64(x as f64));
elem!(f64, F64, |x| float_to_i64(x));
elem!(u8, U8, |x| Some(x as i64));
elem!(i8, I8, |x| Some(x as i64));
elem!(i16, I16, |x| Some(x as i64));
elem!(i32, I32, |x| Some(x as i64));
elem!(i64, I64, |x| Some(x));

impl Elem for bool {
    const DTYPE: DType = DType::Bool;
    fn read(bytes: &[u8], _: bool) -> Self {
        bytes[0] != 0
    }
    fn put_le(self, out: &mut Vec<u8>) {
        out.push(self as u8);
    }
    fn to_f32(self) -> f32 {
        self as u8 as f32
    }
    fn to_i64(self) -> Option<i64> {
        Some(self as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtype_table_matches_enum_order() {
        for (i, (dt, name, code)) in DTYPES.iter().enumerate() {
            assert_eq!(*dt as usize, i);
            assert_eq!(DType::from_name(name), Some(*dt));
            assert_eq!(DType::from_npy_code(code), Some(*dt));
        }
        assert_eq!(DType::I16.size(), 2);
        assert_eq!(ArrayData::Bool(vec![true]).dtype(), DType::Bool);
    }
}
