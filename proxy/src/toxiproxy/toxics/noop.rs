//! `noop`: passes everything (Toxiproxy keeps it for testing clients).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Noop {}
