//! Per-worker layouts (a graph's CSR, ALS's rating blocks) index their local
//! entries with `u32`, half the memory of `usize`; [`fits_u32`] checks, once
//! per layout, that every index of it fits (`u32::MAX` stays free as a
//! "none" slot), so the narrowing casts that follow cannot wrap.

use crate::error::JobError;

/// Entries a `u32`-indexed layout can hold.
pub const MAX_LOCAL: usize = u32::MAX as usize;

/// `Ok` if a layout of `len` entries (`what`: "nodes", "items", ...) can be
/// indexed by `u32`; an error that says what to do otherwise.
pub fn fits_u32(len: usize, what: &str) -> Result<(), JobError> {
    if len < MAX_LOCAL {
        Ok(())
    } else {
        Err(JobError::Compute(format!(
            "one worker holds {len} {what}, more than its layout can index ({}): \
             run with more workers",
            MAX_LOCAL - 1
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_layout_past_u32_is_an_error_not_a_wrapped_index() {
        assert!(fits_u32(0, "nodes").is_ok());
        assert!(fits_u32(MAX_LOCAL - 1, "nodes").is_ok());
        let Err(error @ JobError::Compute(_)) = fits_u32(MAX_LOCAL, "nodes") else {
            panic!("u32::MAX entries cannot be indexed (it is the free slot)");
        };
        assert!(!error.is_usage(), "every option was valid: exit 1, not 2");
        assert!(error.to_string().contains("4294967295 nodes"), "{error}");
        assert!(fits_u32(MAX_LOCAL + 7, "items").is_err());
    }
}
