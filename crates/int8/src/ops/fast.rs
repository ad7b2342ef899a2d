//! What the fast kernels (`tinyq_kernels::fast`) need from the engine: the choice between them
//! and the reference kernels, and per-thread scratch.

use std::cell::RefCell;

use tinyq_kernels::fast::Isa;

use crate::Kernels;

thread_local! {
    /// Grows to the largest scratch any fast kernel on this thread asked for, then is reused:
    /// steady-state evaluation does not allocate.
    static SCRATCH: RefCell<Vec<i16>> = const { RefCell::new(Vec::new()) };
}

/// Calls `f` with at least `len` int16 values of this thread's scratch.
pub(crate) fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [i16]) -> R) -> R {
    SCRATCH.with(|cell| {
        let mut scratch = cell.borrow_mut();
        if scratch.len() < len {
            scratch.resize(len, 0);
        }
        f(&mut scratch[..len])
    })
}

/// The instruction set for fast kernels, or `None` when the plan uses the reference kernels.
pub(crate) fn isa(kernels: Kernels) -> Option<Isa> {
    match kernels {
        Kernels::Fast => Some(Isa::detect()),
        Kernels::Avx2 => Some(Isa::Avx2),
        Kernels::Portable => Some(Isa::Portable),
        Kernels::Reference => None,
    }
}
