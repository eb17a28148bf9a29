//! A client of the control API, used by the CLI, the scenario runner and tests.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::api::{ApplyRequest, ErrorBody, IsolateRequest, PartitionRequest, SourceRequest};
use crate::control::{ActiveFault, Status};
use crate::fault::{Fault, FaultRequest};
use crate::profile::Bindings;
use crate::topology::Topology;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "cannot reach the rift control API at {url} (is `rift proxy` running? set --api or RIFT_API)"
    )]
    Connect { url: String, source: reqwest::Error },
    #[error("rift API {status} for {what}: {message}")]
    Api {
        what: String,
        status: u16,
        message: String,
    },
    #[error("cannot set up the client of the rift API: {message}")]
    Token { message: String },
    #[error("unexpected answer from rift API for {what}")]
    Decode {
        what: String,
        source: reqwest::Error,
    },
}

/// The CA (PEM file) the client trusts for an `https://` API.
pub const TLS_CA_ENV: &str = "RIFT_TLS_CA";

#[derive(Clone)]
pub struct ApiClient {
    base: String,
    http: reqwest::Client,
    /// Bearer token sent with every request; an unreadable token file is kept as an
    /// error so requests fail instead of going out anonymous.
    token: Result<Option<String>, String>,
}

impl ApiClient {
    /// A client sending the token from `RIFT_TOKEN_FILE` or `RIFT_TOKEN`, if set, and
    /// trusting the CA in `RIFT_TLS_CA` for `https://` APIs.
    pub fn new(url: &str) -> ApiClient {
        let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(10));
        let mut token = crate::auth::client_token().map_err(|e| e.to_string());
        if let Some(ca) = std::env::var_os(TLS_CA_ENV).filter(|v| !v.is_empty()) {
            let files = crate::cluster::tls::TlsFiles {
                ca: Some(ca.into()),
                ..Default::default()
            };
            match files.client() {
                Ok(Some(config)) => builder = builder.use_preconfigured_tls(config),
                Ok(None) => {}
                // Fail every request rather than go out without the CA asked for.
                Err(e) => token = Err(format!("{TLS_CA_ENV}: {e}")),
            }
        }
        ApiClient {
            base: url.trim_end_matches('/').to_string(),
            http: builder.build().expect("HTTP client"),
            token,
        }
    }

    /// Replaces the token taken from the environment.
    pub fn with_token(mut self, token: Option<String>) -> ApiClient {
        self.token = Ok(token);
        self
    }

    fn authorize(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::RequestBuilder, ClientError> {
        match &self.token {
            Ok(Some(token)) => Ok(request.bearer_auth(token)),
            Ok(None) => Ok(request),
            Err(message) => Err(ClientError::Token {
                message: message.clone(),
            }),
        }
    }

    pub fn url(&self) -> &str {
        &self.base
    }

    async fn call<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<T, ClientError> {
        let response =
            self.authorize(request)?
                .send()
                .await
                .map_err(|source| ClientError::Connect {
                    url: self.base.clone(),
                    source,
                })?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            let message = serde_json::from_str::<ErrorBody>(&text)
                .map(|b| b.error)
                .unwrap_or(text);
            return Err(ClientError::Api {
                what: what.to_string(),
                status: status.as_u16(),
                message,
            });
        }
        response.json().await.map_err(|source| ClientError::Decode {
            what: what.to_string(),
            source,
        })
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call(
            self.http.get(format!("{}{path}", self.base)),
            &format!("GET {path}"),
        )
        .await
    }

    async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        self.call(
            self.http.post(format!("{}{path}", self.base)).json(body),
            &format!("POST {path}"),
        )
        .await
    }

    pub async fn topology(&self) -> Result<Topology, ClientError> {
        self.get("/topology").await
    }

    pub async fn status(&self) -> Result<Status, ClientError> {
        self.get("/status").await
    }

    pub async fn profiles(&self) -> Result<Vec<Value>, ClientError> {
        self.get("/profiles").await
    }

    pub async fn events(&self, after: u64) -> Result<Vec<Value>, ClientError> {
        self.get(&format!("/events?after={after}")).await
    }

    pub async fn metrics(&self) -> Result<String, ClientError> {
        let what = "GET /metrics";
        let response = self
            .authorize(self.http.get(format!("{}/metrics", self.base)))?
            .send()
            .await
            .map_err(|source| ClientError::Connect {
                url: self.base.clone(),
                source,
            })?;
        response.text().await.map_err(|source| ClientError::Decode {
            what: what.into(),
            source,
        })
    }

    pub async fn apply(&self, request: &FaultRequest) -> Result<ActiveFault, ClientError> {
        self.post("/faults", request).await
    }

    pub async fn partition(
        &self,
        groups: Vec<Vec<String>>,
        fault: Option<Fault>,
        endpoints: Vec<String>,
        duration: Option<Duration>,
    ) -> Result<ActiveFault, ClientError> {
        self.post(
            "/partition",
            &PartitionRequest {
                groups,
                fault,
                endpoints,
                duration,
            },
        )
        .await
    }

    pub async fn isolate(
        &self,
        node: &str,
        fault: Option<Fault>,
        endpoints: Vec<String>,
        duration: Option<Duration>,
    ) -> Result<ActiveFault, ClientError> {
        self.post(
            "/isolate",
            &IsolateRequest {
                node: node.to_string(),
                fault,
                endpoints,
                duration,
            },
        )
        .await
    }

    /// Applies a profile the proxy knows by name.
    pub async fn apply_profile(
        &self,
        name: &str,
        bindings: &Bindings,
        duration: Option<Duration>,
    ) -> Result<ActiveFault, ClientError> {
        let request = ApplyRequest {
            profile: Some(name.into()),
            bindings: bindings.clone(),
            duration,
            ..Default::default()
        };
        self.post("/apply", &request).await
    }

    /// Applies a profile given as TOML text (e.g. a user's file).
    pub async fn apply_profile_toml(
        &self,
        name: &str,
        text: &str,
        bindings: &Bindings,
        duration: Option<Duration>,
    ) -> Result<ActiveFault, ClientError> {
        let request = ApplyRequest {
            profile_toml: Some(text.into()),
            profile_name: Some(name.into()),
            bindings: bindings.clone(),
            duration,
            ..Default::default()
        };
        self.post("/apply", &request).await
    }

    /// Heals everything; returns how many faults were removed.
    pub async fn heal(&self) -> Result<u64, ClientError> {
        let body: BTreeMap<String, Value> = self.post("/heal", &Value::Null).await?;
        Ok(body.get("healed").and_then(Value::as_u64).unwrap_or(0))
    }

    pub async fn heal_fault(&self, id: u64) -> Result<ActiveFault, ClientError> {
        let path = format!("/faults/{id}");
        self.call(
            self.http.delete(format!("{}{path}", self.base)),
            &format!("DELETE {path}"),
        )
        .await
    }

    pub async fn register_source(
        &self,
        node: &str,
        pids: &[u32],
        ips: &[IpAddr],
    ) -> Result<(), ClientError> {
        let request = SourceRequest {
            node: node.into(),
            pids: pids.to_vec(),
            ips: ips.to_vec(),
        };
        let _: Value = self.post("/sources", &request).await?;
        Ok(())
    }
}
