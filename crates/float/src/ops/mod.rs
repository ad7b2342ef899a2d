//! Float kernels, one module per op family. Each is a plain function over slices and shapes.

pub mod activation;
pub mod binary;
pub mod conv;
pub mod data_movement;
pub mod fully_connected;
pub mod pool;
pub mod reduce;
mod simd;
pub(crate) mod tiled;

use tinyq_ir::FusedActivation;

/// Clamps to a fused activation's range.
pub fn apply_activation(out: &mut [f32], act: FusedActivation) {
    let (lo, hi) = act.range();
    if act != FusedActivation::None {
        out.iter_mut().for_each(|v| *v = v.max(lo).min(hi));
    }
}

/// `dst[m×n] (row stride dst_rs) = lhs[m×k] · rhs[k×n]`, strides in elements.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    dst_rs: usize,
    lhs: &[f32],
    lhs_rs: usize,
    lhs_cs: usize,
    rhs: &[f32],
    rhs_rs: usize,
    rhs_cs: usize,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!((m - 1) * dst_rs + n <= dst.len(), "dst too small");
    assert!(k == 0 || (m - 1) * lhs_rs + (k - 1) * lhs_cs < lhs.len(), "lhs too small");
    assert!(k == 0 || (k - 1) * rhs_rs + (n - 1) * rhs_cs < rhs.len(), "rhs too small");
    if k == 0 {
        for r in 0..m {
            dst[r * dst_rs..r * dst_rs + n].fill(0.0);
        }
        return;
    }
    // SAFETY: the asserts above keep every index gemm touches inside the three slices.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            false,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}
