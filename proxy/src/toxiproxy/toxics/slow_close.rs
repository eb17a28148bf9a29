//! `slow_close`: the close (FIN) of the stream is delayed by `delay` ms.

use serde::{Deserialize, Serialize};

use super::{AttributeError, MAX_MILLIS, check_range};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SlowClose {
    pub delay: i64,
}

impl SlowClose {
    pub(super) fn validate(&self) -> Result<(), AttributeError> {
        check_range("delay", self.delay, 0, MAX_MILLIS, "ms")
    }
}
