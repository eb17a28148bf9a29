//! `slicer`: chunks are written in slices of about `average_size` bytes (plus or minus
//! up to `size_variation`), `delay` microseconds apart.

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::{AttributeError, MAX_MILLIS, check_range};

/// Slices larger than this are no slicing at all; the bound keeps sizes in memory.
pub const MAX_SLICE: i64 = 16 * 1024 * 1024;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Slicer {
    pub average_size: i64,
    pub size_variation: i64,
    /// Microseconds between slices.
    pub delay: i64,
}

impl Slicer {
    pub(super) fn validate(&self) -> Result<(), AttributeError> {
        // Toxiproxy recurses forever on an average size of 0 and slices out of range
        // when the variation exceeds the average; both are refused here.
        check_range("average_size", self.average_size, 1, MAX_SLICE, "bytes")?;
        check_range(
            "size_variation",
            self.size_variation,
            0,
            self.average_size,
            "bytes (at most average_size)",
        )?;
        check_range("delay", self.delay, 0, MAX_MILLIS * 1000, "microseconds")
    }

    /// The size of the next slice (at least one byte).
    pub fn next_size(&self) -> usize {
        let variation = self.size_variation.max(0);
        let jitter = if variation > 0 {
            rand::rng().random_range(-variation..=variation)
        } else {
            0
        };
        (self.average_size + jitter).max(1) as usize
    }
}
