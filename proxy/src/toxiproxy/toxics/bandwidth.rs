//! `bandwidth`: at most `rate` KB/s. A rate of 0 stalls the stream without closing it;
//! the bytes held back are delivered when the toxic is removed.

use serde::{Deserialize, Serialize};

use super::{AttributeError, check_range};

/// 10 GB/s: far above what one relayed connection carries, and small enough that
/// byte-per-second arithmetic never overflows.
pub const MAX_RATE_KB: i64 = 10_000_000;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Bandwidth {
    pub rate: i64,
}

impl Bandwidth {
    pub(super) fn validate(&self) -> Result<(), AttributeError> {
        check_range("rate", self.rate, 0, MAX_RATE_KB, "KB/s")
    }
}
