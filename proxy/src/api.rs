//! The HTTP control API (axum on hyper). Handlers only touch the control plane, which
//! publishes matrix versions without waiting on relays, so the API answers promptly
//! however much traffic the links carry. Bad input gets a 400 whose message names the
//! field and the value.
//!
//! | method | path | body |
//! |---|---|---|
//! | GET | /topology, /status, /links, /profiles, /events?after=N, /metrics | |
//! | POST | /faults | `{"label", "rules": [{"from","to","fault":{"kind":"hold"},"endpoints"}], "duration"}` |
//! | POST | /partition | `{"groups": [["a","b"],["c"]], "fault", "endpoints", "duration"}` |
//! | POST | /isolate | `{"node": "a", "fault", "endpoints", "duration"}` |
//! | POST | /apply | `{"profile": "split"` or `"profile_toml": "..."`, `"bindings": {"leader": "a"}, "duration"}` |
//! | POST | /heal | (none) |
//! | DELETE | /faults/{id} | |
//! | POST | /sources | `{"node": "a", "pids": [123], "ips": ["127.0.0.2"]}` |
//!
//! Bodies are limited to [`MAX_BODY_BYTES`] (413 above it). A body that is not the
//! JSON a route expects is a 400 whose message gives the path of the offending field
//! (`groups[1][0]: invalid type...`); a bad query string or path segment is a 400 too,
//! always as `{"error": ...}`. Handlers never wait on anything but the request they
//! serve: the control plane's locks are std locks taken and released within one
//! synchronous call, so no lock is held across an await, and a client that sends half
//! a body or never reads its answer delays only itself.

use std::net::IpAddr;
use std::time::Duration;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::control::{Control, ControlError, CutOptions};
use crate::fault::{Fault, FaultRequest};
use crate::profile::{Bindings, Profile};

#[derive(Clone)]
struct AppState {
    control: Control,
    metrics: Option<PrometheusHandle>,
}

pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1}))).into_response()
    }
}

impl From<ControlError> for ApiError {
    fn from(error: ControlError) -> ApiError {
        match error {
            ControlError::Invalid(m) => ApiError(StatusCode::BAD_REQUEST, m),
            ControlError::NotFound(m) => ApiError(StatusCode::NOT_FOUND, m),
        }
    }
}

/// The largest request body the API reads, in bytes: far above any real request (a
/// fault list for hundreds of links, a profile file) and small enough that a runaway
/// client cannot make the proxy buffer much.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> ApiError {
        let status = rejection.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError(
                status,
                format!("request body larger than the API's limit of {MAX_BODY_BYTES} bytes"),
            );
        }
        // axum reports the failing field's path (serde_path_to_error), e.g.
        // "groups[0][1]: invalid type: integer `3`, expected a string". It answers
        // well-formed JSON of the wrong shape with 422; the API answers every bad body
        // with 400 so clients have one status to handle (415 for a non-JSON type stays).
        let status = match status {
            StatusCode::UNPROCESSABLE_ENTITY => StatusCode::BAD_REQUEST,
            other => other,
        };
        ApiError(
            status,
            format!("invalid request body: {}", rejection.body_text()),
        )
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> ApiError {
        ApiError(
            StatusCode::BAD_REQUEST,
            format!("invalid query string: {}", rejection.body_text()),
        )
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> ApiError {
        ApiError(
            rejection.status(),
            format!("invalid path: {}", rejection.body_text()),
        )
    }
}

type ApiResult<T> = Result<T, ApiError>;

pub fn router(control: Control, metrics: Option<PrometheusHandle>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/topology", get(topology))
        .route("/status", get(status))
        .route("/links", get(links))
        .route("/profiles", get(profiles))
        .route("/events", get(events))
        .route("/metrics", get(render_metrics))
        .route("/faults", post(apply_faults))
        .route("/faults/{id}", delete(heal_fault))
        .route("/partition", post(partition))
        .route("/isolate", post(isolate))
        .route("/apply", post(apply_profile))
        .route("/heal", post(heal))
        .route("/sources", post(register_source))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(AppState { control, metrics })
}

pub async fn serve(
    listener: TcpListener,
    control: Control,
    metrics: Option<PrometheusHandle>,
    shutdown: watch::Receiver<bool>,
) {
    serve_app(listener, router(control, metrics), shutdown).await
}

/// Serves a finished router (e.g. the API behind [`crate::auth::protect`]).
pub async fn serve_app(listener: TcpListener, app: Router, mut shutdown: watch::Receiver<bool>) {
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = shutdown.changed().await;
        })
        .await;
    if let Err(error) = result {
        tracing::error!(%error, "control API stopped");
    }
}

async fn index() -> Json<Value> {
    Json(json!({
        "service": "rift",
        "get": ["/topology", "/status", "/links", "/profiles", "/events?after=N", "/metrics"],
        "post": ["/faults", "/partition", "/isolate", "/apply", "/heal", "/sources"],
        "delete": ["/faults/{id}"],
    }))
}

async fn topology(State(s): State<AppState>) -> Json<Value> {
    Json(serde_json::to_value(s.control.topology()).unwrap_or(Value::Null))
}

async fn status(State(s): State<AppState>) -> Json<crate::control::Status> {
    Json(s.control.status())
}

#[derive(Serialize)]
struct LinkCell {
    from: String,
    to: String,
    state: u8,
}

/// The full matrix, every directed pair including `client`.
async fn links(State(s): State<AppState>) -> Json<Vec<LinkCell>> {
    let matrix = s.control.matrix();
    let ids = s.control.identities();
    let mut cells = Vec::new();
    for from in 0..ids.len() {
        for to in (0..ids.len()).filter(|to| *to != from) {
            cells.push(LinkCell {
                from: ids.name(from).to_string(),
                to: ids.name(to).to_string(),
                state: matrix.link_state(from, to),
            });
        }
    }
    Json(cells)
}

async fn profiles(State(s): State<AppState>) -> Json<Vec<Value>> {
    Json(
        s.control
            .profiles()
            .list()
            .map(|p| json!({"name": p.name, "kind": p.kind, "description": p.description}))
            .collect(),
    )
}

#[derive(Deserialize)]
struct EventsQuery {
    #[serde(default)]
    after: u64,
}

async fn events(
    State(s): State<AppState>,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> ApiResult<Json<Vec<Value>>> {
    let Query(q) = query?;
    Ok(Json(s.control.events().since(q.after)))
}

async fn render_metrics(State(s): State<AppState>) -> ApiResult<String> {
    match &s.metrics {
        Some(handle) => Ok(handle.render()),
        None => Err(ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "another metrics recorder is installed in this process".into(),
        )),
    }
}

async fn apply_faults(
    State(s): State<AppState>,
    body: Result<Json<FaultRequest>, JsonRejection>,
) -> ApiResult<impl IntoResponse> {
    let Json(request) = body?;
    Ok((StatusCode::CREATED, Json(s.control.apply(request)?)))
}

async fn heal_fault(
    State(s): State<AppState>,
    id: Result<Path<u64>, PathRejection>,
) -> ApiResult<impl IntoResponse> {
    let Path(id) = id?;
    Ok(Json(s.control.heal_fault(id)?))
}

/// Body of `POST /partition`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionRequest {
    pub groups: Vec<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<Fault>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<String>,
    #[serde(
        default,
        with = "crate::fault::opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub duration: Option<Duration>,
}

async fn partition(
    State(s): State<AppState>,
    body: Result<Json<PartitionRequest>, JsonRejection>,
) -> ApiResult<impl IntoResponse> {
    let Json(request) = body?;
    let options = CutOptions {
        fault: request.fault,
        endpoints: request.endpoints,
        duration: request.duration,
        label: None,
    };
    Ok((
        StatusCode::CREATED,
        Json(s.control.partition(request.groups, options)?),
    ))
}

/// Body of `POST /isolate`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IsolateRequest {
    pub node: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<Fault>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<String>,
    #[serde(
        default,
        with = "crate::fault::opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub duration: Option<Duration>,
}

async fn isolate(
    State(s): State<AppState>,
    body: Result<Json<IsolateRequest>, JsonRejection>,
) -> ApiResult<impl IntoResponse> {
    let Json(request) = body?;
    let options = CutOptions {
        fault: request.fault,
        endpoints: request.endpoints,
        duration: request.duration,
        label: None,
    };
    Ok((
        StatusCode::CREATED,
        Json(s.control.isolate(&request.node, options)?),
    ))
}

/// Body of `POST /apply`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplyRequest {
    /// Name of a profile the proxy knows (built-in or from its profile directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// A whole profile file, for profiles the proxy does not know.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_toml: Option<String>,
    /// Name shown for an inline profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile_name: Option<String>,
    #[serde(default)]
    pub bindings: Bindings,
    #[serde(
        default,
        with = "crate::fault::opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub duration: Option<Duration>,
}

async fn apply_profile(
    State(s): State<AppState>,
    body: Result<Json<ApplyRequest>, JsonRejection>,
) -> ApiResult<impl IntoResponse> {
    let Json(request) = body?;
    let applied = match (request.profile, request.profile_toml) {
        (Some(name), None) => {
            s.control
                .apply_profile_named(&name, &request.bindings, request.duration)?
        }
        (None, Some(text)) => {
            let name = request.profile_name.unwrap_or_else(|| "inline".into());
            let profile = Profile::parse(&text, &name, &format!("profile_toml ({name})"))
                .map_err(|e| ApiError(StatusCode::BAD_REQUEST, e.to_string()))?;
            s.control
                .apply_profile(&profile, &request.bindings, request.duration)?
        }
        _ => {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                "give exactly one of `profile` or `profile_toml`".into(),
            ));
        }
    };
    Ok((StatusCode::CREATED, Json(applied)))
}

async fn heal(State(s): State<AppState>) -> Json<Value> {
    Json(json!({"healed": s.control.heal()}))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceRequest {
    pub node: String,
    #[serde(default)]
    pub pids: Vec<u32>,
    #[serde(default)]
    pub ips: Vec<IpAddr>,
}

async fn register_source(
    State(s): State<AppState>,
    body: Result<Json<SourceRequest>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    let Json(request) = body?;
    s.control
        .register_source(&request.node, &request.pids, &request.ips)?;
    Ok(Json(
        json!({"node": request.node, "pids": request.pids, "ips": request.ips}),
    ))
}

/// Used by the client to decode error bodies.
#[derive(Debug, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}
