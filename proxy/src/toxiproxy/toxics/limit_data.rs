//! `limit_data`: the connection is closed once `bytes` bytes crossed this stream.

use serde::{Deserialize, Serialize};

use super::{AttributeError, check_range};

/// 2^53: the largest integer every JSON client represents exactly.
pub const MAX_BYTES: i64 = 1 << 53;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LimitData {
    pub bytes: i64,
}

impl LimitData {
    pub(super) fn validate(&self) -> Result<(), AttributeError> {
        check_range("bytes", self.bytes, 0, MAX_BYTES, "bytes")
    }
}
