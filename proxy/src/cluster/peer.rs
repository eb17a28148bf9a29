//! HTTP between the controller and its agents, both ways, with the bearer token.
//! Every call has a deadline: a hung agent costs a bounded wait and is reported by
//! name, it never stalls the controller.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("{url}: unreachable: {cause}")]
    Unreachable { url: String, cause: String },
    #[error("{url}: answered {status}: {message}")]
    Refused {
        url: String,
        status: u16,
        message: String,
    },
    #[error("{url}: unexpected answer: {cause}")]
    Decode { url: String, cause: String },
}

/// The causes of an error, outermost first, e.g. "error sending request: connection refused".
pub(crate) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        let next = c.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        cause = c.source();
    }
    text
}

/// Why a request got no answer, without the URL reqwest repeats at every level.
fn unreachable_cause(error: &reqwest::Error, timeout: Duration) -> String {
    if error.is_timeout() {
        return format!("no answer within {} ms", timeout.as_millis());
    }
    let mut deepest: &dyn std::error::Error = error;
    while let Some(cause) = deepest.source() {
        deepest = cause;
    }
    deepest.to_string()
}

#[derive(Clone)]
pub struct Peer {
    http: reqwest::Client,
    token: Option<String>,
    scheme: &'static str,
}

impl Peer {
    /// A peer client sending `token` with every request; with `tls`, it dials HTTPS
    /// and accepts only certificates of that configuration's CA.
    pub fn new(token: Option<String>, tls: Option<rustls::ClientConfig>) -> Peer {
        let builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true);
        let (builder, scheme) = match tls {
            Some(config) => (builder.use_preconfigured_tls(config), "https"),
            None => (builder, "http"),
        };
        Peer {
            http: builder.build().expect("HTTP client"),
            token,
            scheme,
        }
    }

    /// `host:port` (or a full URL) to a base URL.
    pub fn base(&self, address: &str) -> String {
        if address.contains("://") {
            address.trim_end_matches('/').to_string()
        } else {
            format!("{}://{address}", self.scheme)
        }
    }

    pub async fn get<T: DeserializeOwned>(
        &self,
        address: &str,
        path: &str,
        timeout: Duration,
    ) -> Result<T, PeerError> {
        let url = format!("{}{path}", self.base(address));
        self.call(self.http.get(&url), url, timeout).await
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        address: &str,
        path: &str,
        body: &B,
        timeout: Duration,
    ) -> Result<T, PeerError> {
        let url = format!("{}{path}", self.base(address));
        self.call(self.http.post(&url).json(body), url, timeout)
            .await
    }

    async fn call<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
        url: String,
        timeout: Duration,
    ) -> Result<T, PeerError> {
        let request = match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let response =
            request
                .timeout(timeout)
                .send()
                .await
                .map_err(|e| PeerError::Unreachable {
                    url: url.clone(),
                    cause: unreachable_cause(&e, timeout),
                })?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            let message = serde_json::from_str::<crate::api::ErrorBody>(&text)
                .map(|b| b.error)
                .unwrap_or(text);
            return Err(PeerError::Refused {
                url,
                status: status.as_u16(),
                message,
            });
        }
        response.json().await.map_err(|e| PeerError::Decode {
            url,
            cause: chain(&e),
        })
    }
}
