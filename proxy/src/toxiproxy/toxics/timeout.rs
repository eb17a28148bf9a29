//! `timeout`: bytes are swallowed; the connection closes after `timeout` ms without
//! data (0: never, until the toxic is removed, which closes the connection).

use serde::{Deserialize, Serialize};

use super::{AttributeError, MAX_MILLIS, check_range};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timeout {
    pub timeout: i64,
}

impl Timeout {
    pub(super) fn validate(&self) -> Result<(), AttributeError> {
        check_range("timeout", self.timeout, 0, MAX_MILLIS, "ms")
    }
}
