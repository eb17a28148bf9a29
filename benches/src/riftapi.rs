//! Drives rift's control API for the partition workload, as a user's tooling would:
//! over HTTP, with `POST /faults` and `POST /heal`.

use anyhow::{Result, bail};

use crate::many::Cutter;
use crate::targets::RIFT_NODE;

/// Cuts the `client` identity (the harness) from the echo node through rift's control
/// API, in both directions, with the default `hold` fault.
pub struct RiftApi {
    url: String,
    http: reqwest::Client,
}

impl RiftApi {
    pub fn new(url: String) -> Self {
        Self {
            url,
            http: reqwest::Client::new(),
        }
    }

    async fn post(&self, path: &str, body: serde_json::Value) -> Result<()> {
        let resp = self
            .http
            .post(format!("{}{path}", self.url))
            .json(&body)
            .send()
            .await?;
        if !resp.status().is_success() {
            let status = resp.status();
            bail!(
                "POST {path}: {status}: {}",
                resp.text().await.unwrap_or_default()
            );
        }
        Ok(())
    }
}

impl Cutter for RiftApi {
    async fn cut(&self) -> Result<()> {
        let rule = |from: &str, to: &str| serde_json::json!({"from": from, "to": to, "fault": {"kind": "hold"}});
        self.post(
            "/faults",
            serde_json::json!({"label": "bench", "rules": [rule("client", RIFT_NODE), rule(RIFT_NODE, "client")]}),
        )
        .await
    }

    async fn heal(&self) -> Result<()> {
        self.post("/heal", serde_json::json!({})).await
    }
}
