//! Sixteen f32 lanes as the tiled kernels see them: one AVX-512 register, two AVX2 registers, or
//! a plain array the compiler vectorizes as it can. The kernels are generic over [`Tile`] and are
//! compiled once per implementation inside a function that enables its CPU features, so every
//! `#[inline(always)]` method below lands in code built for those features.

/// Lanes of a [`Tile`].
pub const L: usize = 16;

/// Sixteen f32 lanes and the few operations the kernels need.
pub trait Tile: Copy {
    /// Whether a kernel can keep two tiles of accumulators per pixel of its block in registers.
    const PAIRS: bool = false;
    /// Loads 16 values from `p`.
    ///
    /// # Safety
    /// `p..p + 16` must be readable, and the CPU must have the implementation's features.
    unsafe fn load(p: *const f32) -> Self;
    fn splat(x: f32) -> Self;
    /// `a · b + c` (one rounding where the implementation fuses, two otherwise).
    fn mul_add(a: Self, b: Self, c: Self) -> Self;
    fn add(a: Self, b: Self) -> Self;
    fn div(a: Self, b: Self) -> Self;
    /// `f32::max(self, v)` lane by lane, for a `self` that holds no NaN (a running maximum).
    fn max_with(self, v: Self) -> Self;
    /// `max(lo)` then `min(hi)`, lane by lane, as [`super::apply_activation`] clamps.
    fn clamp(self, lo: Self, hi: Self) -> Self;
    fn to_array(self) -> [f32; L];
    /// Stores the 16 values at `p`.
    ///
    /// # Safety
    /// `p..p + 16` must be writable, and the CPU must have the implementation's features.
    unsafe fn store(self, p: *mut f32);
}

/// The portable tile: multiply then add, the compiler's own vectorization.
#[derive(Clone, Copy)]
pub struct Plain([f32; L]);

impl Tile for Plain {
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: the caller guarantees 16 readable values.
        Plain(unsafe { std::ptr::read_unaligned(p as *const [f32; L]) })
    }
    #[inline(always)]
    fn splat(x: f32) -> Self {
        Plain([x; L])
    }
    #[inline(always)]
    fn mul_add(a: Self, b: Self, c: Self) -> Self {
        Plain(std::array::from_fn(|l| a.0[l] * b.0[l] + c.0[l]))
    }
    #[inline(always)]
    fn add(a: Self, b: Self) -> Self {
        Plain(std::array::from_fn(|l| a.0[l] + b.0[l]))
    }
    #[inline(always)]
    fn div(a: Self, b: Self) -> Self {
        Plain(std::array::from_fn(|l| a.0[l] / b.0[l]))
    }
    #[inline(always)]
    fn max_with(self, v: Self) -> Self {
        Plain(std::array::from_fn(|l| self.0[l].max(v.0[l])))
    }
    #[inline(always)]
    fn clamp(self, lo: Self, hi: Self) -> Self {
        Plain(std::array::from_fn(|l| self.0[l].max(lo.0[l]).min(hi.0[l])))
    }
    #[inline(always)]
    fn to_array(self) -> [f32; L] {
        self.0
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: the caller guarantees 16 writable values.
        unsafe { std::ptr::write_unaligned(p as *mut [f32; L], self.0) }
    }
}

#[cfg(target_arch = "x86_64")]
pub use x86::{Avx2, Avx512};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Tile, L};
    use std::arch::x86_64::*;

    /// One `__m512`; used only inside functions that enable `avx512f`.
    #[derive(Clone, Copy)]
    pub struct Avx512(__m512);

    /// Two `__m256`; used only inside functions that enable `avx2` and `fma`.
    #[derive(Clone, Copy)]
    pub struct Avx2(__m256, __m256);

    // SAFETY (every block below): the methods are only called from kernels compiled inside a
    // `#[target_feature]` function that the CPU was checked to support; loads read 16 values the
    // caller guarantees.
    impl Tile for Avx512 {
        const PAIRS: bool = true;
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            unsafe { Avx512(_mm512_loadu_ps(p)) }
        }
        #[inline(always)]
        fn splat(x: f32) -> Self {
            unsafe { Avx512(_mm512_set1_ps(x)) }
        }
        #[inline(always)]
        fn mul_add(a: Self, b: Self, c: Self) -> Self {
            unsafe { Avx512(_mm512_fmadd_ps(a.0, b.0, c.0)) }
        }
        #[inline(always)]
        fn add(a: Self, b: Self) -> Self {
            unsafe { Avx512(_mm512_add_ps(a.0, b.0)) }
        }
        #[inline(always)]
        fn div(a: Self, b: Self) -> Self {
            unsafe { Avx512(_mm512_div_ps(a.0, b.0)) }
        }
        #[inline(always)]
        fn max_with(self, v: Self) -> Self {
            // Where v is NaN the intrinsic returns its second operand, the running maximum.
            unsafe { Avx512(_mm512_max_ps(v.0, self.0)) }
        }
        #[inline(always)]
        fn clamp(self, lo: Self, hi: Self) -> Self {
            // The intrinsics return their second operand where either is NaN, as f32::max/min
            // return the operand that is not NaN.
            unsafe { Avx512(_mm512_min_ps(_mm512_max_ps(self.0, lo.0), hi.0)) }
        }
        #[inline(always)]
        fn to_array(self) -> [f32; L] {
            let mut a = [0f32; L];
            unsafe { _mm512_storeu_ps(a.as_mut_ptr(), self.0) };
            a
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            unsafe { _mm512_storeu_ps(p, self.0) }
        }
    }

    impl Tile for Avx2 {
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            unsafe { Avx2(_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8))) }
        }
        #[inline(always)]
        fn splat(x: f32) -> Self {
            unsafe { Avx2(_mm256_set1_ps(x), _mm256_set1_ps(x)) }
        }
        #[inline(always)]
        fn mul_add(a: Self, b: Self, c: Self) -> Self {
            unsafe { Avx2(_mm256_fmadd_ps(a.0, b.0, c.0), _mm256_fmadd_ps(a.1, b.1, c.1)) }
        }
        #[inline(always)]
        fn add(a: Self, b: Self) -> Self {
            unsafe { Avx2(_mm256_add_ps(a.0, b.0), _mm256_add_ps(a.1, b.1)) }
        }
        #[inline(always)]
        fn div(a: Self, b: Self) -> Self {
            unsafe { Avx2(_mm256_div_ps(a.0, b.0), _mm256_div_ps(a.1, b.1)) }
        }
        #[inline(always)]
        fn max_with(self, v: Self) -> Self {
            unsafe { Avx2(_mm256_max_ps(v.0, self.0), _mm256_max_ps(v.1, self.1)) }
        }
        #[inline(always)]
        fn clamp(self, lo: Self, hi: Self) -> Self {
            unsafe {
                Avx2(_mm256_min_ps(_mm256_max_ps(self.0, lo.0), hi.0), _mm256_min_ps(_mm256_max_ps(self.1, lo.1), hi.1))
            }
        }
        #[inline(always)]
        fn to_array(self) -> [f32; L] {
            let mut a = [0f32; L];
            unsafe {
                _mm256_storeu_ps(a.as_mut_ptr(), self.0);
                _mm256_storeu_ps(a.as_mut_ptr().add(8), self.1);
            }
            a
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            unsafe {
                _mm256_storeu_ps(p, self.0);
                _mm256_storeu_ps(p.add(8), self.1);
            }
        }
    }
}
