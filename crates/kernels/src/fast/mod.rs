//! Fast int8 kernels, bit-identical to the reference kernels beside them.
//!
//! The reference kernels (`conv`, `depthwise_conv`, `fully_connected`) follow TFLM's loop nests
//! one multiply-accumulate at a time. The kernels here compute the same integers faster:
//!
//! * weights are packed once, in `prepare_*` (int16, laid out for the inner loop, the input
//!   offset of the skipped padding taps folded away by gathering `x + input_offset` with 0 for
//!   padding, exactly what the reference adds);
//! * the inner loops are int16 × int16 → int32 multiply-adds (`vpmaddwd` / `vpmullw`), exact for
//!   every int8 operand (`|x + input_offset| ≤ 255`, `|w + weight_offset| ≤ 255`). Integer sums
//!   modulo 2^32 do not depend on their order, so the accumulators equal the reference's;
//! * the output stage is TFLM's `MultiplyByQuantizedMultiplier` (double rounding:
//!   `SaturatingRoundingDoublingHighMul` then `RoundingDivideByPOT`), vectorised lane by lane with
//!   the same integer steps ([`stage`]).
//!
//! x86-64 uses AVX2 when the CPU has it (checked at run time with `is_x86_feature_detected!`),
//! and for the GEMM of conv and fully connected and for depthwise conv AVX-512 VNNI when it has
//! that too (int8 operands, `vpdpbusd`; [`vnni`], `depthwise_vnni`); every other target, and x86-64 without AVX2, runs the portable loops,
//! plain Rust written for the compiler to vectorise. [`Isa`] names the path; tests run every path
//! the CPU has against the reference.
//!
//! Only the default build's double rounding has a fast path: a `prepare_*` here refuses
//! `Rounding::Single`, and callers then keep the reference kernel.
//!
//! Eval functions take their scratch from the caller (`scratch_len` says how much) and never
//! allocate. They accept any number of batches: the input may hold several samples back to back
//! (the prepared shapes' batch count is ignored), which is how the engine runs many samples per
//! call with the weights in cache.

pub mod add;
pub mod conv;
pub mod depthwise_conv;
mod depthwise_vnni;
pub mod fully_connected;
mod gemm;
pub mod mean;
pub mod pad;
mod patches;
pub mod pool;
pub mod stage;
mod vnni;

#[cfg(test)]
mod tests;

/// The instruction set a fast kernel runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    /// x86-64 AVX-512 VNNI (with AVX2): the int8 GEMM of conv and fully connected in bytes
    /// (`vpdpbusd`, [`vnni`]); the other kernels run their AVX2 form.
    Avx512Vnni,
    /// x86-64 AVX2 (`std::arch` intrinsics).
    Avx2,
    /// Plain Rust, any target.
    Portable,
}

impl Isa {
    /// The best path this CPU supports.
    pub fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            let vnni = is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512vnni");
            if is_x86_feature_detected!("avx2") {
                return if vnni { Isa::Avx512Vnni } else { Isa::Avx2 };
            }
        }
        Isa::Portable
    }

    /// Every path this CPU can run (for tests that compare them all).
    pub fn available() -> Vec<Isa> {
        [Isa::Portable, Isa::Avx2, Isa::Avx512Vnni].into_iter().filter(|&isa| isa.checked() == isa).collect()
    }

    /// `self`, unless the CPU cannot run it, then the best path below it that it can.
    pub(crate) fn checked(self) -> Isa {
        match (self, Isa::detect()) {
            (Isa::Portable, _) | (_, Isa::Portable) => Isa::Portable,
            (Isa::Avx2, _) | (_, Isa::Avx2) => Isa::Avx2,
            (Isa::Avx512Vnni, Isa::Avx512Vnni) => Isa::Avx512Vnni,
        }
    }
}
