//! Untrusted input fed to the real parsers and the real control API, shared by the
//! property tests (`proxy/tests/fuzz_inputs.rs`, a short run on stable in the test
//! suite) and the cargo-fuzz targets (`fuzz/`, long runs on nightly). Each function
//! returns `Err` with a reason when an invariant breaks; a panic anywhere below is the
//! other failure both kinds of fuzzer look for.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use tower::ServiceExt;

use crate::control::ConnectionTable;
use crate::control::Control;
use crate::events::EventLog;
use crate::identity::SourceRegistry;
use crate::profile::{Bindings, Profile, ProfileLibrary};
use crate::topology::Topology;

/// The topology behind [`ApiHarness`]: three nodes with two endpoints each; nothing
/// is dialled, so the upstreams need not exist.
pub const TOPOLOGY: &str = r#"
[[node]]
name = "n1"
source_ips = ["127.0.0.11"]
[[node.endpoint]]
name = "peer"
listen = "127.0.0.1:0"
upstream = "127.0.0.1:9"
[[node.endpoint]]
name = "client"
listen = "127.0.0.1:0"
upstream = "127.0.0.1:9"

[[node]]
name = "n2"
[[node.endpoint]]
name = "peer"
listen = "127.0.0.1:0"
upstream = "127.0.0.1:9"
[[node.endpoint]]
name = "client"
listen = "127.0.0.1:0"
upstream = "127.0.0.1:9"

[[node]]
name = "n3"
[[node.endpoint]]
name = "peer"
listen = "127.0.0.1:0"
upstream = "127.0.0.1:9"
[[node.endpoint]]
name = "client"
listen = "127.0.0.1:0"
upstream = "127.0.0.1:9"
"#;

/// A topology file: parsing never panics, and one that parses serialises and parses
/// back to itself.
pub fn topology_text(text: &str) -> Result<(), String> {
    let Ok(topology) = Topology::parse(text, "fuzz.toml") else {
        return Ok(());
    };
    let again = Topology::parse(&topology.to_toml(), "round-trip")
        .map_err(|e| format!("a parsed topology does not parse back: {e}"))?;
    if again != topology {
        return Err("a topology changed through to_toml and parse".into());
    }
    Ok(())
}

/// The control API in-process (no sockets): a control plane over [`TOPOLOGY`] and its
/// router, driven on a runtime of its own.
pub struct ApiHarness {
    runtime: tokio::runtime::Runtime,
    topology: Arc<Topology>,
    /// Parsed once: parsing the built-in profiles is most of what a fresh control
    /// plane costs.
    profiles: ProfileLibrary,
    control: Control,
    router: axum::Router,
}

impl Default for ApiHarness {
    fn default() -> Self {
        Self::new()
    }
}

impl ApiHarness {
    pub fn new() -> ApiHarness {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime");
        let topology = Arc::new(Topology::parse(TOPOLOGY, "harness").expect("harness topology"));
        let profiles = ProfileLibrary::builtin();
        let (control, router) = Self::control_plane(&runtime, &topology, &profiles);
        ApiHarness {
            runtime,
            topology,
            profiles,
            control,
            router,
        }
    }

    fn control_plane(
        runtime: &tokio::runtime::Runtime,
        topology: &Arc<Topology>,
        profiles: &ProfileLibrary,
    ) -> (Control, axum::Router) {
        let control = runtime.block_on(async {
            Control::new(
                topology.clone(),
                EventLog::new(None).expect("in-memory event log"),
                Arc::new(SourceRegistry::default()),
                profiles.clone(),
                Arc::new(ConnectionTable::default()),
            )
        });
        let router = crate::api::router(control.clone(), None);
        (control, router)
    }

    /// A fresh control plane (no faults, no events, no registered sources) on the same
    /// runtime. Fuzz targets call it before every case so that a case's outcome depends
    /// on its input alone: a crash found then reproduces from its one input, and cases
    /// stay cheap (a control plane carried across millions of cases fills its event
    /// ring and source registry, and every `/events` or `/status` case then serialises
    /// all of it).
    pub fn reset(&mut self) {
        // Aborts the auto-heal timers, which hold a handle on the old control plane.
        self.heal();
        let (control, router) = Self::control_plane(&self.runtime, &self.topology, &self.profiles);
        self.control = control;
        self.router = router;
        // Lets the runtime drop the aborted timer tasks now.
        self.runtime.block_on(tokio::task::yield_now());
    }

    /// One request. Invariants: no 5xx (but 503 from `/metrics`, which has no recorder
    /// here); every 400, 413 and 415 is a JSON `{"error": "..."}`; the control plane
    /// answers afterwards. A request line the HTTP parser would refuse is skipped.
    pub fn request(
        &self,
        method: &str,
        path_and_query: &str,
        body: &[u8],
    ) -> Result<Option<u16>, String> {
        let Ok(method) = Method::from_bytes(method.as_bytes()) else {
            return Ok(None);
        };
        let Ok(request) = Request::builder()
            .method(method)
            .uri(path_and_query)
            .header("content-type", "application/json")
            .body(Body::from(body.to_vec()))
        else {
            return Ok(None);
        };
        let (status, bytes) = self.runtime.block_on(async {
            let response = self
                .router
                .clone()
                .oneshot(request)
                .await
                .expect("axum routers are infallible");
            let status = response.status();
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .map_err(|e| format!("reading the answer: {e}"));
            (status, bytes)
        });
        let bytes = bytes?;
        let what = || format!("{path_and_query} {:?}", String::from_utf8_lossy(body));
        if status.is_server_error()
            && !(status == StatusCode::SERVICE_UNAVAILABLE
                && path_and_query.starts_with("/metrics"))
        {
            return Err(format!("{status} for {}", what()));
        }
        if matches!(status.as_u16(), 400 | 413 | 415) {
            let value: serde_json::Value = serde_json::from_slice(&bytes)
                .map_err(|e| format!("{status} without a JSON body ({e}) for {}", what()))?;
            if !value["error"].is_string() {
                return Err(format!("{status} without an error message for {}", what()));
            }
        }
        // A failed request must leave the control plane usable.
        let _ = self.control.status();
        Ok(Some(status.as_u16()))
    }

    /// A profile file: parsing never panics, and one that parses is applied (resolved
    /// against the topology with `bindings`) or refused with an error, then healed.
    pub fn profile_text(&self, text: &str, bindings: &Bindings) -> Result<(), String> {
        let Ok(profile) = Profile::parse(text, "fuzz", "fuzz.toml") else {
            return Ok(());
        };
        let _guard = self.runtime.enter();
        if self.control.apply_profile(&profile, bindings, None).is_ok() {
            let _ = self.control.status();
        }
        self.heal();
        Ok(())
    }

    /// Removes every fault, so a long run does not accumulate them.
    pub fn heal(&self) {
        let _guard = self.runtime.enter();
        self.control.heal();
    }
}

/// Applies byte-level edits to a seed: the mutations both fuzzers start from when a
/// valid file is the best starting point. Each edit is (kind, position, argument).
pub fn mutate(seed: &[u8], edits: &[(u8, u32, u32)], dictionary: &[&str]) -> Vec<u8> {
    let mut out = seed.to_vec();
    for &(kind, at, arg) in edits {
        let len = out.len();
        let at = if len == 0 { 0 } else { at as usize % (len + 1) };
        match kind % 5 {
            // Insert a token: a field name, a keyword, an extreme number.
            0 if !dictionary.is_empty() => {
                let token = dictionary[arg as usize % dictionary.len()];
                out.splice(at..at, token.bytes());
            }
            // Delete a short range.
            1 if len > 0 => {
                let end = (at + 1 + arg as usize % 16).min(len);
                out.drain(at.min(len - 1)..end);
            }
            // Overwrite one byte.
            2 if at < len => out[at] = arg as u8,
            // Duplicate a short range (repeated keys, nested tables).
            3 if len > 0 => {
                let start = at.min(len - 1);
                let end = (start + 1 + arg as usize % 32).min(len);
                let copy = out[start..end].to_vec();
                out.splice(end..end, copy);
            }
            // Truncate.
            _ => out.truncate(at),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_harness_catches_what_it_claims_to() {
        let api = ApiHarness::new();
        assert_eq!(
            api.request("POST", "/isolate", br#"{"node":"n1"}"#),
            Ok(Some(201))
        );
        assert_eq!(api.request("GET", "/status", b""), Ok(Some(200)));
        api.heal();
        assert_eq!(api.control.status().faults.len(), 0);
        assert_eq!(api.request("POST", "/isolate", b"{"), Ok(Some(400)));
        // A request line the HTTP layer refuses never reaches the router.
        assert_eq!(api.request("GET", "/a b", b""), Ok(None));
        assert!(topology_text(TOPOLOGY).is_ok());
        assert_eq!(mutate(b"abc", &[(4, 1, 0)], &[]), b"a");
        assert_eq!(mutate(b"abc", &[(0, 3, 1)], &["x", "yz"]), b"abcyz");
    }

    #[test]
    fn reset_starts_every_case_from_the_same_state() {
        let mut api = ApiHarness::new();
        let before = api.control.events().since(0).len();
        assert_eq!(
            api.request("POST", "/isolate", br#"{"node":"n2","duration":"1h"}"#),
            Ok(Some(201))
        );
        assert_eq!(
            api.request("POST", "/sources", br#"{"node":"n3","pids":[4242]}"#),
            Ok(Some(200))
        );
        assert!(api.control.events().since(0).len() > before);
        api.reset();
        let status = api.control.status();
        assert!(status.faults.is_empty(), "{:?}", status.faults);
        assert!(
            status.sources.iter().all(|s| s.pids.is_empty()),
            "{:?}",
            status.sources
        );
        assert_eq!(api.control.events().since(0).len(), before);
        // The new router serves the new control plane.
        assert_eq!(
            api.request("POST", "/isolate", br#"{"node":"n1"}"#),
            Ok(Some(201))
        );
        assert_eq!(api.control.status().faults.len(), 1);
    }
}
