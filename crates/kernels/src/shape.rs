//! Small fixed-capacity shape helpers (up to [`MAX_DIMS`] dimensions) so that n-dimensional
//! kernels stay allocation-free, plus the broadcasting descriptor of TFLM's
//! `BroadcastBinaryFunction6DSlow` (`reference/binary_function.h`, `reference/add.h`).

use crate::KernelError;

/// The largest rank the n-dimensional kernels accept (TFLM `RuntimeShape::kMaxSmallSize`).
pub const MAX_DIMS: usize = 6;

/// A shape stored inline, row-major.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Dims {
    dims: [usize; MAX_DIMS],
    rank: usize,
}

impl Dims {
    /// Fails when the rank exceeds [`MAX_DIMS`].
    pub fn new(shape: &[usize]) -> Result<Self, KernelError> {
        if shape.len() > MAX_DIMS {
            return Err(KernelError::Unsupported { what: "rank above 6" });
        }
        let mut dims = [1; MAX_DIMS];
        dims[..shape.len()].copy_from_slice(shape);
        Ok(Self { dims, rank: shape.len() })
    }

    pub fn as_slice(&self) -> &[usize] {
        &self.dims[..self.rank]
    }

    pub fn rank(&self) -> usize {
        self.rank
    }

    pub fn flat_size(&self) -> usize {
        self.as_slice().iter().product()
    }

    /// Row-major strides in elements.
    pub(crate) fn strides(&self) -> [usize; MAX_DIMS] {
        let mut strides = [0; MAX_DIMS];
        let mut stride = 1;
        for axis in (0..self.rank).rev() {
            strides[axis] = stride;
            stride *= self.dims[axis];
        }
        strides
    }
}

/// Advances a row-major multi-index; returns false after the last index.
#[inline]
pub(crate) fn next_index(index: &mut [usize], dims: &[usize]) -> bool {
    for axis in (0..dims.len()).rev() {
        index[axis] += 1;
        if index[axis] < dims[axis] {
            return true;
        }
        index[axis] = 0;
    }
    false
}

/// Resolves a possibly negative axis against `rank`.
pub(crate) fn resolve_axis(axis: i32, rank: usize) -> Result<usize, KernelError> {
    let resolved = if axis < 0 { axis + rank as i32 } else { axis };
    if resolved < 0 || resolved as usize >= rank {
        return Err(KernelError::InvalidShape { what: "axis out of range" });
    }
    Ok(resolved as usize)
}

/// Numpy-style broadcasting of two shapes (ranks aligned on the right, each dimension equal or
/// 1), as TFLM's `NdArrayDescsForElementwiseBroadcast` sets it up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BroadcastShapes {
    output: Dims,
    input1_strides: [usize; MAX_DIMS],
    input2_strides: [usize; MAX_DIMS],
    input1_size: usize,
    input2_size: usize,
}

impl BroadcastShapes {
    pub fn new(shape1: &[usize], shape2: &[usize]) -> Result<Self, KernelError> {
        let rank = shape1.len().max(shape2.len());
        let in1 = Dims::new(shape1)?;
        let in2 = Dims::new(shape2)?;
        let mut out = [1; MAX_DIMS];
        let mut input1_strides = [0; MAX_DIMS];
        let mut input2_strides = [0; MAX_DIMS];
        let (s1, s2) = (in1.strides(), in2.strides());
        for axis in 0..rank {
            let d1 = (axis + shape1.len()).checked_sub(rank).map(|a| (shape1[a], s1[a]));
            let d2 = (axis + shape2.len()).checked_sub(rank).map(|a| (shape2[a], s2[a]));
            let (n1, st1) = d1.unwrap_or((1, 0));
            let (n2, st2) = d2.unwrap_or((1, 0));
            out[axis] = match (n1, n2) {
                (a, b) if a == b => a,
                (1, b) => b,
                (a, 1) => a,
                _ => return Err(KernelError::InvalidShape { what: "shapes are not broadcast-compatible" }),
            };
            input1_strides[axis] = if n1 == 1 { 0 } else { st1 };
            input2_strides[axis] = if n2 == 1 { 0 } else { st2 };
        }
        Ok(Self {
            output: Dims::new(&out[..rank])?,
            input1_strides,
            input2_strides,
            input1_size: in1.flat_size(),
            input2_size: in2.flat_size(),
        })
    }

    pub fn output_shape(&self) -> &[usize] {
        self.output.as_slice()
    }

    pub fn output_size(&self) -> usize {
        self.output.flat_size()
    }

    pub fn input1_size(&self) -> usize {
        self.input1_size
    }

    pub fn input2_size(&self) -> usize {
        self.input2_size
    }

    /// Calls `f(i1, i2, o)` with flat indices for every output element, in row-major order.
    pub(crate) fn for_each(&self, mut f: impl FnMut(usize, usize, usize)) {
        let dims = self.output.as_slice();
        if dims.contains(&0) {
            return;
        }
        let mut index = [0; MAX_DIMS];
        let mut o = 0;
        loop {
            let position = &index[..dims.len()];
            let i1: usize = position.iter().zip(&self.input1_strides).map(|(i, s)| i * s).sum();
            let i2: usize = position.iter().zip(&self.input2_strides).map(|(i, s)| i * s).sum();
            f(i1, i2, o);
            o += 1;
            if !next_index(&mut index[..dims.len()], dims) {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_indices() {
        let b = BroadcastShapes::new(&[2, 1, 3], &[4, 1]).unwrap();
        assert_eq!(b.output_shape(), &[2, 4, 3]);
        let mut seen = Vec::new();
        b.for_each(|i1, i2, o| seen.push((i1, i2, o)));
        assert_eq!(seen.len(), 24);
        assert_eq!(seen[0], (0, 0, 0));
        assert_eq!(seen[4], (1, 1, 4)); // [0,1,1]
        assert_eq!(seen[23], (5, 3, 23)); // [1,3,2]
        assert!(BroadcastShapes::new(&[2, 3], &[3, 2]).is_err());
        assert!(BroadcastShapes::new(&[1; 7], &[1]).is_err());
        let scalar = BroadcastShapes::new(&[], &[2]).unwrap();
        assert_eq!(scalar.output_shape(), &[2]);
    }
}
