//! rift speaking Toxiproxy 2.12's HTTP API, so Toxiproxy clients and Testcontainers'
//! Toxiproxy module drive rift unchanged.
//!
//! - [`api`]: the routes, status codes and JSON shapes of Toxiproxy's `api.go`.
//! - [`proxy`]: proxies created at run time, each with its own listener.
//! - [`link`]: the per-connection relay that applies toxics to live connections.
//! - [`rift`]: rift's own control plane (partition, isolate, profiles) over the same
//!   proxies, each a rift node.
//! - [`toxics`]: toxic types, attributes, partial updates and their bounds.
//!
//! Behaviour follows Toxiproxy's `api.go`, `proxy_collection.go`, `toxic_collection.go`
//! and `toxics/*.go` (v2.12.0): the same errors (`{"error": ..., "status": ...}`), the
//! same defaults (stream `downstream`, toxicity 1, name `<type>_<stream>`), toxic names
//! unique across both streams, `/populate` replacing only entries that changed.

pub mod api;
pub mod link;
pub mod proxy;
pub mod rift;
pub mod toxics;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Map, Value, json};
use tokio::sync::Mutex;

use proxy::Proxy;
use toxics::{Kind, Stream, Toxic};

/// The version `/version` reports: clients compare it with 2.6 (PATCH support) and
/// Testcontainers with 2.x, so rift reports the Toxiproxy release whose API it serves.
pub const API_VERSION: &str = "2.12.0";

/// A Toxiproxy error: the status code and the body `{"error": message, "status": code}`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message} (HTTP {status})")]
pub struct ApiError {
    pub message: String,
    pub status: u16,
}

impl ApiError {
    fn new(message: impl Into<String>, status: u16) -> ApiError {
        ApiError {
            message: message.into(),
            status,
        }
    }

    pub fn bad_request_body(detail: impl std::fmt::Display) -> ApiError {
        ApiError::new(format!("bad request body: {detail}"), 400)
    }

    pub fn missing_field(field: &str) -> ApiError {
        ApiError::new(format!("missing required field: {field}"), 400)
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(message, 500)
    }

    pub fn proxy_not_found() -> ApiError {
        ApiError::new("proxy not found", 404)
    }

    pub fn proxy_exists() -> ApiError {
        ApiError::new("proxy already exists", 409)
    }

    pub fn invalid_stream() -> ApiError {
        ApiError::new(
            "stream was invalid, can be either upstream or downstream",
            400,
        )
    }

    pub fn invalid_toxic_type() -> ApiError {
        ApiError::new("invalid toxic type", 400)
    }

    pub fn toxic_exists() -> ApiError {
        ApiError::new("toxic already exists", 409)
    }

    pub fn toxic_not_found() -> ApiError {
        ApiError::new("toxic not found", 404)
    }

    pub fn to_json(&self) -> Value {
        json!({"error": self.message, "status": self.status})
    }
}

/// Decodes the first JSON value of a body, as Go's `json.NewDecoder(body).Decode`
/// does (trailing bytes are ignored; an empty body is `EOF`).
pub fn decode_body(body: &[u8]) -> Result<Value, ApiError> {
    let mut values = serde_json::Deserializer::from_slice(body).into_iter::<Value>();
    match values.next() {
        Some(Ok(value)) => Ok(value),
        Some(Err(e)) if e.is_eof() && body.iter().all(u8::is_ascii_whitespace) => {
            Err(ApiError::bad_request_body("EOF"))
        }
        Some(Err(e)) => Err(ApiError::bad_request_body(e)),
        None => Err(ApiError::bad_request_body("EOF")),
    }
}

fn object(value: &Value) -> Result<&Map<String, Value>, ApiError> {
    value
        .as_object()
        .ok_or_else(|| ApiError::bad_request_body("expected a JSON object"))
}

/// A string field; absent or `null` is `None`.
fn string_field(fields: &Map<String, Value>, key: &str) -> Result<Option<String>, ApiError> {
    match fields.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(ApiError::bad_request_body(format!(
            "{key}: expected a string, got {other}"
        ))),
    }
}

fn bool_field(fields: &Map<String, Value>, key: &str) -> Result<Option<bool>, ApiError> {
    match fields.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(ApiError::bad_request_body(format!(
            "{key}: expected a boolean, got {other}"
        ))),
    }
}

fn number_field(fields: &Map<String, Value>, key: &str) -> Result<Option<f64>, ApiError> {
    match fields.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(other) => Err(ApiError::bad_request_body(format!(
            "{key}: expected a number, got {other}"
        ))),
    }
}

/// The proxies of one `rift toxiproxy` server.
#[derive(Clone, Default)]
pub struct Toxiproxy {
    proxies: Arc<Mutex<BTreeMap<String, Proxy>>>,
    toxic_ids: Arc<AtomicU64>,
    bridge: Option<rift::Bridge>,
}

impl Toxiproxy {
    pub fn new() -> Toxiproxy {
        Toxiproxy::default()
    }

    /// A server whose proxies are also rift nodes, cut by rift's own control plane.
    pub fn with_rift(bridge: rift::Bridge) -> Toxiproxy {
        Toxiproxy {
            bridge: Some(bridge),
            ..Toxiproxy::default()
        }
    }

    pub fn bridge(&self) -> Option<&rift::Bridge> {
        self.bridge.as_ref()
    }

    /// Tells rift's control plane about the proxies (new names become nodes).
    fn sync(&self, proxies: &BTreeMap<String, Proxy>) {
        if let Some(bridge) = &self.bridge {
            let specs: Vec<rift::NodeSpec> = proxies
                .values()
                .map(|p| rift::NodeSpec {
                    name: p.name.clone(),
                    listen: p.listen.clone(),
                    upstream: p.upstream.clone(),
                })
                .collect();
            bridge.sync(&specs);
        }
    }

    fn next_id(&self) -> u64 {
        self.toxic_ids.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// `GET /proxies`: an object keyed by name, in name order.
    pub async fn list(&self) -> Value {
        let proxies = self.proxies.lock().await;
        Value::Object(
            proxies
                .iter()
                .map(|(name, p)| (name.clone(), p.to_json()))
                .collect(),
        )
    }

    /// `POST /proxies` (201).
    pub async fn create(&self, body: &[u8]) -> Result<Value, ApiError> {
        let value = decode_body(body)?;
        let fields = object(&value)?;
        let name = string_field(fields, "name")?.unwrap_or_default();
        let listen = string_field(fields, "listen")?.unwrap_or_default();
        let upstream = string_field(fields, "upstream")?.unwrap_or_default();
        let enabled = bool_field(fields, "enabled")?.unwrap_or(true);
        if name.is_empty() {
            return Err(ApiError::missing_field("name"));
        }
        if upstream.is_empty() {
            return Err(ApiError::missing_field("upstream"));
        }
        let mut proxies = self.proxies.lock().await;
        if proxies.contains_key(&name) {
            return Err(ApiError::proxy_exists());
        }
        let mut proxy = Proxy::new(name.clone(), listen, upstream);
        if enabled {
            proxy.start(self.bridge.as_ref()).await?;
        }
        let json = proxy.to_json();
        proxies.insert(name, proxy);
        self.sync(&proxies);
        Ok(json)
    }

    /// `POST /populate`: entries that did not change are kept (with their toxics),
    /// changed ones replaced; not atomic — on an error the proxies handled so far are
    /// returned with it. Answers the status and body Toxiproxy gives.
    pub async fn populate(&self, body: &[u8]) -> (u16, Value) {
        match self.populate_entries(body).await {
            (proxies, None) => (201, json!({"proxies": proxies})),
            (proxies, Some(error)) => (
                error.status,
                json!({"error": error.message, "status": error.status, "proxies": proxies}),
            ),
        }
    }

    async fn populate_entries(&self, body: &[u8]) -> (Vec<Value>, Option<ApiError>) {
        let entries = match parse_populate(body) {
            Ok(entries) => entries,
            Err(error) => return (Vec::new(), Some(error)),
        };
        let mut done = Vec::new();
        let mut proxies = self.proxies.lock().await;
        for entry in entries {
            if let Some(existing) = proxies.get_mut(&entry.name) {
                match existing.differs(&entry.listen, &entry.upstream).await {
                    Err(error) => return (done, Some(error)),
                    Ok(false) => {
                        done.push(existing.to_json());
                        continue;
                    }
                    Ok(true) => existing.stop().await,
                }
            }
            let mut proxy = Proxy::new(entry.name.clone(), entry.listen, entry.upstream);
            if entry.enabled
                && let Err(error) = proxy.start(self.bridge.as_ref()).await
            {
                return (done, Some(error));
            }
            done.push(proxy.to_json());
            proxies.insert(entry.name, proxy);
            self.sync(&proxies);
        }
        (done, None)
    }

    /// Populates from a `-config` file (a JSON array, as for `POST /populate`).
    pub async fn populate_file(&self, path: &Path) -> Result<usize, String> {
        let text =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        match self.populate_entries(&text).await {
            (done, None) => Ok(done.len()),
            (_, Some(error)) => Err(format!("{}: {}", path.display(), error.message)),
        }
    }

    /// `GET /proxies/{name}`.
    pub async fn show(&self, name: &str) -> Result<Value, ApiError> {
        let proxies = self.proxies.lock().await;
        proxies
            .get(name)
            .map(Proxy::to_json)
            .ok_or_else(ApiError::proxy_not_found)
    }

    /// `POST|PATCH /proxies/{name}`: fields not sent keep their values; a new listen
    /// address or upstream restarts the proxy; `enabled` starts or stops it.
    pub async fn update(&self, name: &str, body: &[u8]) -> Result<Value, ApiError> {
        let mut proxies = self.proxies.lock().await;
        let proxy = proxies
            .get_mut(name)
            .ok_or_else(ApiError::proxy_not_found)?;
        let value = decode_body(body)?;
        let fields = object(&value)?;
        let listen = string_field(fields, "listen")?.unwrap_or_else(|| proxy.listen.clone());
        let upstream = string_field(fields, "upstream")?.unwrap_or_else(|| proxy.upstream.clone());
        let enabled = bool_field(fields, "enabled")?.unwrap_or(proxy.enabled());
        if proxy.differs(&listen, &upstream).await? {
            proxy.stop().await;
            proxy.listen = listen;
            proxy.upstream = upstream;
        }
        if enabled != proxy.enabled() {
            if enabled {
                proxy.start(self.bridge.as_ref()).await?;
            } else {
                proxy.stop().await;
            }
        }
        let json = proxy.to_json();
        self.sync(&proxies);
        Ok(json)
    }

    /// `DELETE /proxies/{name}`: closes the listener and its connections.
    pub async fn delete(&self, name: &str) -> Result<(), ApiError> {
        let mut proxies = self.proxies.lock().await;
        let mut proxy = proxies.remove(name).ok_or_else(ApiError::proxy_not_found)?;
        proxy.stop().await;
        Ok(())
    }

    /// `POST /reset`: every proxy enabled, every toxic removed.
    pub async fn reset(&self) -> Result<(), ApiError> {
        let mut proxies = self.proxies.lock().await;
        for proxy in proxies.values_mut() {
            proxy.start(self.bridge.as_ref()).await?;
            proxy.set_toxics(Vec::new());
        }
        Ok(())
    }

    /// Stops every proxy (server shutdown).
    pub async fn shutdown(&self) {
        let mut proxies = self.proxies.lock().await;
        for proxy in proxies.values_mut() {
            proxy.stop().await;
        }
    }

    /// `GET /proxies/{name}/toxics`.
    pub async fn toxics(&self, name: &str) -> Result<Value, ApiError> {
        let proxies = self.proxies.lock().await;
        let proxy = proxies.get(name).ok_or_else(ApiError::proxy_not_found)?;
        Ok(proxy.toxics_json())
    }

    /// `POST /proxies/{name}/toxics` (200, as in Toxiproxy).
    pub async fn add_toxic(&self, name: &str, body: &[u8]) -> Result<Value, ApiError> {
        let mut proxies = self.proxies.lock().await;
        let proxy = proxies
            .get_mut(name)
            .ok_or_else(ApiError::proxy_not_found)?;
        let value = decode_body(body)?;
        let fields = object(&value)?;
        let type_name = string_field(fields, "type")?.unwrap_or_default();
        let stream_text = string_field(fields, "stream")?.unwrap_or_else(|| "downstream".into());
        let toxicity = number_field(fields, "toxicity")?.unwrap_or(1.0);
        let stream = Stream::parse(&stream_text).ok_or_else(ApiError::invalid_stream)?;
        let toxic_name = string_field(fields, "name")?
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| format!("{type_name}_{}", stream.as_str()));
        let Some(kind) = Kind::create(&type_name, fields.get("attributes")) else {
            return Err(ApiError::invalid_toxic_type());
        };
        if proxy.toxic(&toxic_name).is_some() {
            return Err(ApiError::toxic_exists());
        }
        let kind = kind.map_err(ApiError::bad_request_body)?;
        let toxicity = toxics::check_toxicity(toxicity).map_err(ApiError::bad_request_body)?;
        let id = self.next_id();
        let toxic = Toxic {
            name: toxic_name,
            stream,
            toxicity,
            kind,
            id,
            revision: id,
        };
        let json = toxic.to_json();
        let mut list = proxy.toxics().to_vec();
        list.push(toxic);
        proxy.set_toxics(list);
        Ok(json)
    }

    /// `GET /proxies/{name}/toxics/{toxic}`.
    pub async fn show_toxic(&self, name: &str, toxic: &str) -> Result<Value, ApiError> {
        let proxies = self.proxies.lock().await;
        let proxy = proxies.get(name).ok_or_else(ApiError::proxy_not_found)?;
        proxy
            .toxic(toxic)
            .map(Toxic::to_json)
            .ok_or_else(ApiError::toxic_not_found)
    }

    /// `POST|PATCH /proxies/{name}/toxics/{toxic}`: attributes not sent are kept.
    pub async fn update_toxic(
        &self,
        name: &str,
        toxic: &str,
        body: &[u8],
    ) -> Result<Value, ApiError> {
        let mut proxies = self.proxies.lock().await;
        let proxy = proxies
            .get_mut(name)
            .ok_or_else(ApiError::proxy_not_found)?;
        let current = proxy
            .toxic(toxic)
            .ok_or_else(ApiError::toxic_not_found)?
            .clone();
        let value = decode_body(body)?;
        let fields = object(&value)?;
        let kind = current
            .kind
            .update(fields.get("attributes"))
            .map_err(ApiError::bad_request_body)?;
        let toxicity = match number_field(fields, "toxicity")? {
            Some(t) => toxics::check_toxicity(t).map_err(ApiError::bad_request_body)?,
            None => current.toxicity,
        };
        let updated = Toxic {
            kind,
            toxicity,
            revision: self.next_id(),
            ..current
        };
        let json = updated.to_json();
        let list = proxy
            .toxics()
            .iter()
            .map(|t| {
                if t.name == toxic {
                    updated.clone()
                } else {
                    t.clone()
                }
            })
            .collect();
        proxy.set_toxics(list);
        Ok(json)
    }

    /// `DELETE /proxies/{name}/toxics/{toxic}`.
    pub async fn remove_toxic(&self, name: &str, toxic: &str) -> Result<(), ApiError> {
        let mut proxies = self.proxies.lock().await;
        let proxy = proxies
            .get_mut(name)
            .ok_or_else(ApiError::proxy_not_found)?;
        proxy.toxic(toxic).ok_or_else(ApiError::toxic_not_found)?;
        let list = proxy
            .toxics()
            .iter()
            .filter(|t| t.name != toxic)
            .cloned()
            .collect();
        proxy.set_toxics(list);
        Ok(())
    }
}

struct PopulateEntry {
    name: String,
    listen: String,
    upstream: String,
    enabled: bool,
}

/// Checks every entry before any proxy is touched, as Toxiproxy does.
fn parse_populate(body: &[u8]) -> Result<Vec<PopulateEntry>, ApiError> {
    let value = decode_body(body)?;
    let items = match &value {
        Value::Null => return Ok(Vec::new()),
        Value::Array(items) => items,
        _ => {
            return Err(ApiError::bad_request_body(
                "expected a JSON array of proxies",
            ));
        }
    };
    let mut entries = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let fields = object(item)?;
        let name = string_field(fields, "name")?.unwrap_or_default();
        let upstream = string_field(fields, "upstream")?.unwrap_or_default();
        if name.is_empty() {
            return Err(ApiError::missing_field(&format!("name at proxy {}", i + 1)));
        }
        if upstream.is_empty() {
            return Err(ApiError::missing_field(&format!(
                "upstream at proxy {}",
                i + 1
            )));
        }
        entries.push(PopulateEntry {
            name,
            listen: string_field(fields, "listen")?.unwrap_or_default(),
            upstream,
            enabled: bool_field(fields, "enabled")?.unwrap_or(true),
        });
    }
    Ok(entries)
}
