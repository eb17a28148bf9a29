//! `reset_peer`: on the next data, wait `timeout` ms and reset the connection (RST,
//! SO_LINGER 0); the data is dropped.

use serde::{Deserialize, Serialize};

use super::{AttributeError, MAX_MILLIS, check_range};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResetPeer {
    pub timeout: i64,
}

impl ResetPeer {
    pub(super) fn validate(&self) -> Result<(), AttributeError> {
        check_range("timeout", self.timeout, 0, MAX_MILLIS, "ms")
    }
}
