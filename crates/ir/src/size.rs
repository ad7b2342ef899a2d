//! Checked sizes: every dimension, element count and byte count that comes from a file goes
//! through here before anything is allocated or indexed, so hostile shapes become errors instead
//! of overflows, out-of-bounds panics or multi-gigabyte allocations.
//!
//! One limit bounds any single tensor or data array: [`max_tensor_bytes`], 1 GiB unless the
//! environment variable `TINYQ_MAX_TENSOR_MB` says otherwise (a whole number of MiB).

use std::sync::OnceLock;

/// The environment variable that raises (or lowers) [`max_tensor_bytes`], in MiB.
pub const LIMIT_ENV: &str = "TINYQ_MAX_TENSOR_MB";

/// Default limit of one tensor: 1 GiB.
pub const DEFAULT_MAX_TENSOR_BYTES: usize = 1 << 30;

/// The largest tensor (or data array) tinyq allocates, in bytes.
pub fn max_tensor_bytes() -> usize {
    static LIMIT: OnceLock<usize> = OnceLock::new();
    *LIMIT.get_or_init(|| {
        std::env::var(LIMIT_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .and_then(|mb| mb.checked_mul(1 << 20))
            .filter(|&b| b > 0)
            .unwrap_or(DEFAULT_MAX_TENSOR_BYTES)
    })
}

/// Element count of `shape`, or `None` when the product overflows `usize`.
pub fn checked_numel(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}

/// Element count of a tensor of `shape` whose elements take `elem_bytes` bytes, checked against
/// [`max_tensor_bytes`]; the error says how large it is and how to raise the limit.
pub fn tensor_numel(shape: &[usize], elem_bytes: usize) -> Result<usize, String> {
    let n = checked_numel(shape).ok_or_else(|| format!("shape {shape:?} has more elements than fit in memory"))?;
    let bytes = n.checked_mul(elem_bytes.max(1)).ok_or_else(|| format!("shape {shape:?} is too large"))?;
    let limit = max_tensor_bytes();
    if bytes > limit {
        return Err(format!(
            "shape {shape:?} needs {} MiB, over the limit of {} MiB per tensor (set {LIMIT_ENV} to raise it)",
            bytes >> 20,
            limit >> 20
        ));
    }
    Ok(n)
}

/// A dimension read from a file as a signed integer: non-negative and at most `max_tensor_bytes`.
pub fn dim(value: i64) -> Result<usize, String> {
    if value < 0 {
        return Err(format!("dimension {value} is negative"));
    }
    usize::try_from(value)
        .ok()
        .filter(|&d| d <= max_tensor_bytes())
        .ok_or_else(|| format!("dimension {value} is too large"))
}

/// Dimensions read from a file (see [`dim`]) whose element count stays within the limit.
pub fn shape(values: &[i64], elem_bytes: usize) -> Result<Vec<usize>, String> {
    let s = values.iter().map(|&v| dim(v)).collect::<Result<Vec<_>, _>>()?;
    tensor_numel(&s, elem_bytes)?;
    Ok(s)
}

/// A count read from a file that must be at least 1 (strides, kernel sizes, dilations).
pub fn positive(what: &str, value: i64) -> Result<usize, String> {
    match usize::try_from(value) {
        Ok(v) if v >= 1 && v <= max_tensor_bytes() => Ok(v),
        _ => Err(format!("{what} {value} must be at least 1 and at most {}", max_tensor_bytes())),
    }
}

/// A count read from a file that may be 0 (pads), bounded like a dimension.
pub fn non_negative(what: &str, value: i64) -> Result<usize, String> {
    dim(value).map_err(|_| format!("{what} {value} must be between 0 and {}", max_tensor_bytes()))
}

/// `a + b`, `a * b` for sizes, with a message naming `what` on overflow.
pub fn add(what: &str, a: usize, b: usize) -> Result<usize, String> {
    a.checked_add(b).ok_or_else(|| format!("{what}: {a} + {b} overflows"))
}

pub fn mul(what: &str, a: usize, b: usize) -> Result<usize, String> {
    a.checked_mul(b).ok_or_else(|| format!("{what}: {a} × {b} overflows"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflowing_and_oversized_shapes_are_errors() {
        assert_eq!(checked_numel(&[(1 << 62) + 1, 4]), None);
        assert!(tensor_numel(&[(1 << 62) + 1, 4], 4).is_err());
        assert!(tensor_numel(&[1, 4_000_000_000], 8).unwrap_err().contains("limit"));
        assert_eq!(tensor_numel(&[2, 3], 4), Ok(6));
        assert_eq!(tensor_numel(&[], 4), Ok(1));
        assert!(dim(-1).is_err());
        assert!(dim(1 << 62).is_err());
        assert!(positive("stride", 0).is_err());
        assert_eq!(positive("stride", 2), Ok(2));
        assert!(non_negative("pad", -1).is_err());
        assert!(shape(&[1 << 40, 1 << 40], 1).is_err());
    }
}
