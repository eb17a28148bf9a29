//! `latency`: every chunk is delayed by `latency` ms, plus or minus up to `jitter` ms.

use serde::{Deserialize, Serialize};

use super::{AttributeError, MAX_MILLIS, check_range};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub latency: i64,
    pub jitter: i64,
}

impl Latency {
    pub(super) fn validate(&self) -> Result<(), AttributeError> {
        check_range("latency", self.latency, 0, MAX_MILLIS, "ms")?;
        check_range("jitter", self.jitter, 0, MAX_MILLIS, "ms")
    }
}
