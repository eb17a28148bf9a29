//! Toxiproxy's toxics as data: their JSON shapes, defaults, partial updates and bounds.
//!
//! Every numeric attribute is bounded here, at the edge, so a huge latency, rate or
//! byte count is a 400 naming the field and value and never reaches a timer or an
//! arithmetic operation in the relay. What a toxic does to bytes is in `link.rs`.

mod bandwidth;
mod latency;
mod limit_data;
mod noop;
mod reset_peer;
mod slicer;
mod slow_close;
mod timeout;

pub use bandwidth::Bandwidth;
pub use latency::Latency;
pub use limit_data::LimitData;
pub use noop::Noop;
pub use reset_peer::ResetPeer;
pub use slicer::Slicer;
pub use slow_close::SlowClose;
pub use timeout::Timeout;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// The longest delay any toxic accepts, in milliseconds (one day). Longer values are
/// almost certainly unit mistakes, and bounding them keeps every deadline computable.
pub const MAX_MILLIS: i64 = 86_400_000;

/// Toxiproxy's two streams: `upstream` carries client -> server bytes, `downstream`
/// server -> client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Upstream,
    Downstream,
}

impl Stream {
    /// Parses like Toxiproxy's `stream.ParseDirection` (case-insensitive).
    pub fn parse(text: &str) -> Option<Stream> {
        match text.to_ascii_lowercase().as_str() {
            "upstream" => Some(Stream::Upstream),
            "downstream" => Some(Stream::Downstream),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Upstream => "upstream",
            Stream::Downstream => "downstream",
        }
    }
}

/// A toxic's type and attributes.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Latency(Latency),
    Bandwidth(Bandwidth),
    SlowClose(SlowClose),
    Timeout(Timeout),
    ResetPeer(ResetPeer),
    Slicer(Slicer),
    LimitData(LimitData),
    Noop(Noop),
}

/// The toxic types Toxiproxy 2.12 registers, in its documentation's order.
pub const TYPES: [&str; 8] = [
    "latency",
    "bandwidth",
    "slow_close",
    "timeout",
    "reset_peer",
    "slicer",
    "limit_data",
    "noop",
];

/// Why attributes were refused; the API answers 400 with this text.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AttributeError {
    #[error("attributes: expected a JSON object, got {0}")]
    NotObject(String),
    #[error("attributes.{field}: {message}")]
    Decode { field: String, message: String },
    #[error("attributes.{field} = {value}: {reason}")]
    OutOfRange {
        field: String,
        value: String,
        reason: String,
    },
    #[error("toxicity = {0}: must be between 0 and 1")]
    Toxicity(f64),
}

/// Checks one integer attribute against `min..=max`.
pub(crate) fn check_range(
    field: &'static str,
    value: i64,
    min: i64,
    max: i64,
    unit: &str,
) -> Result<(), AttributeError> {
    if value < min || value > max {
        return Err(AttributeError::OutOfRange {
            field: field.to_string(),
            value: value.to_string(),
            reason: format!("must be between {min} and {max} {unit}"),
        });
    }
    Ok(())
}

/// Decodes attributes over `base`: fields present in `patch` replace those of `base`,
/// the others are kept (Toxiproxy decodes the request into the existing struct).
fn merge<T: Serialize + DeserializeOwned>(
    base: &T,
    patch: Option<&Value>,
) -> Result<T, AttributeError> {
    let mut object = match serde_json::to_value(base) {
        Ok(Value::Object(object)) => object,
        _ => Map::new(),
    };
    match patch {
        None | Some(Value::Null) => {}
        Some(Value::Object(fields)) => {
            for (key, value) in fields {
                // Toxiproxy ignores attributes its toxic does not have, and a null leaves a
                // field as it was; so do we.
                if object.contains_key(key) && !value.is_null() {
                    object.insert(key.clone(), value.clone());
                }
            }
        }
        Some(other) => return Err(AttributeError::NotObject(type_name(other).into())),
    }
    // Decode field by field so the error names the field that failed.
    for (key, value) in &object {
        if !(value.is_i64() || value.is_u64()) {
            return Err(AttributeError::Decode {
                field: key.clone(),
                message: format!("expected an integer, got {}", describe(value)),
            });
        }
        if value.is_u64() && !value.is_i64() {
            return Err(AttributeError::OutOfRange {
                field: key.clone(),
                value: value.to_string(),
                reason: "does not fit a 64-bit signed integer".into(),
            });
        }
    }
    serde_json::from_value(Value::Object(object)).map_err(|e| AttributeError::Decode {
        field: "*".into(),
        message: e.to_string(),
    })
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string {s:?}"),
        other => type_name(other).to_string(),
    }
}

impl Kind {
    /// A toxic of `type_name` with Toxiproxy's zero-valued attributes overlaid by
    /// `attributes`; `None` for an unknown type.
    pub fn create(
        type_name: &str,
        attributes: Option<&Value>,
    ) -> Option<Result<Kind, AttributeError>> {
        let kind = match type_name {
            "latency" => Kind::Latency(Latency::default()),
            "bandwidth" => Kind::Bandwidth(Bandwidth::default()),
            "slow_close" => Kind::SlowClose(SlowClose::default()),
            "timeout" => Kind::Timeout(Timeout::default()),
            "reset_peer" => Kind::ResetPeer(ResetPeer::default()),
            "slicer" => Kind::Slicer(Slicer::default()),
            "limit_data" => Kind::LimitData(LimitData::default()),
            "noop" => Kind::Noop(Noop::default()),
            _ => return None,
        };
        Some(kind.update(attributes))
    }

    /// The same toxic with the attributes in `patch` changed and the others kept,
    /// validated against the bounds.
    pub fn update(&self, patch: Option<&Value>) -> Result<Kind, AttributeError> {
        let kind = match self {
            Kind::Latency(a) => Kind::Latency(merge(a, patch)?),
            Kind::Bandwidth(a) => Kind::Bandwidth(merge(a, patch)?),
            Kind::SlowClose(a) => Kind::SlowClose(merge(a, patch)?),
            Kind::Timeout(a) => Kind::Timeout(merge(a, patch)?),
            Kind::ResetPeer(a) => Kind::ResetPeer(merge(a, patch)?),
            Kind::Slicer(a) => Kind::Slicer(merge(a, patch)?),
            Kind::LimitData(a) => Kind::LimitData(merge(a, patch)?),
            Kind::Noop(a) => Kind::Noop(merge(a, patch)?),
        };
        kind.validate()?;
        Ok(kind)
    }

    fn validate(&self) -> Result<(), AttributeError> {
        match self {
            Kind::Latency(a) => a.validate(),
            Kind::Bandwidth(a) => a.validate(),
            Kind::SlowClose(a) => a.validate(),
            Kind::Timeout(a) => a.validate(),
            Kind::ResetPeer(a) => a.validate(),
            Kind::Slicer(a) => a.validate(),
            Kind::LimitData(a) => a.validate(),
            Kind::Noop(_) => Ok(()),
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Kind::Latency(_) => "latency",
            Kind::Bandwidth(_) => "bandwidth",
            Kind::SlowClose(_) => "slow_close",
            Kind::Timeout(_) => "timeout",
            Kind::ResetPeer(_) => "reset_peer",
            Kind::Slicer(_) => "slicer",
            Kind::LimitData(_) => "limit_data",
            Kind::Noop(_) => "noop",
        }
    }

    pub fn attributes(&self) -> Value {
        let value = match self {
            Kind::Latency(a) => serde_json::to_value(a),
            Kind::Bandwidth(a) => serde_json::to_value(a),
            Kind::SlowClose(a) => serde_json::to_value(a),
            Kind::Timeout(a) => serde_json::to_value(a),
            Kind::ResetPeer(a) => serde_json::to_value(a),
            Kind::Slicer(a) => serde_json::to_value(a),
            Kind::LimitData(a) => serde_json::to_value(a),
            Kind::Noop(a) => serde_json::to_value(a),
        };
        value.unwrap_or(Value::Null)
    }
}

/// One toxic of a proxy, as the API shows it and relays read it.
#[derive(Debug, Clone, PartialEq)]
pub struct Toxic {
    pub name: String,
    pub stream: Stream,
    pub toxicity: f32,
    pub kind: Kind,
    /// Set at creation: per-connection state (bytes counted by `limit_data`) follows it.
    pub id: u64,
    /// Changes on every update: connections draw toxicity again, as Toxiproxy re-runs
    /// a toxic (and draws again) when it is updated.
    pub revision: u64,
}

impl Toxic {
    /// Toxiproxy's JSON: `{"attributes", "name", "type", "stream", "toxicity"}`.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "attributes": self.kind.attributes(),
            "name": self.name,
            "type": self.kind.type_name(),
            "stream": self.stream.as_str(),
            "toxicity": self.toxicity,
        })
    }
}

/// Checks a toxicity from a request.
pub fn check_toxicity(value: f64) -> Result<f32, AttributeError> {
    if !(0.0..=1.0).contains(&value) {
        return Err(AttributeError::Toxicity(value));
    }
    Ok(value as f32)
}

#[cfg(test)]
mod tests;
