//! Toxiproxy's HTTP routes (api.go) on axum: same paths, methods, status codes and
//! bodies. Handlers lock the proxy registry only; relays read toxics through a
//! `watch` channel, so a request never waits on traffic.
//!
//! | method | path | answer |
//! |---|---|---|
//! | GET | /version | `{"version": "2.12.0"}` |
//! | POST | /reset | 204 |
//! | GET, POST | /proxies | 200 object by name / 201 proxy |
//! | POST | /populate | 201 `{"proxies": [...]}` |
//! | GET, POST/PATCH, DELETE | /proxies/{proxy} | 200 / 200 / 204 |
//! | GET, POST | /proxies/{proxy}/toxics | 200 array / 200 toxic |
//! | GET, POST/PATCH, DELETE | /proxies/{proxy}/toxics/{toxic} | 200 / 200 / 204 |

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::Value;
use tokio::net::TcpListener;

use super::{API_VERSION, ApiError, Toxiproxy};

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        json_response(status, &self.to_json())
    }
}

fn json_response(status: StatusCode, value: &Value) -> Response {
    let mut response = (status, value.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn ok(value: Value) -> Response {
    json_response(StatusCode::OK, &value)
}

fn answer(result: Result<Value, ApiError>, status: StatusCode) -> Response {
    match result {
        Ok(value) => json_response(status, &value),
        Err(error) => error.into_response(),
    }
}

fn no_content(result: Result<(), ApiError>) -> Response {
    match result {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(error) => error.into_response(),
    }
}

/// The Toxiproxy API router over `toxiproxy`.
pub fn router(toxiproxy: Toxiproxy) -> Router {
    Router::new()
        .route("/version", get(version))
        .route("/reset", post(reset))
        .route("/proxies", get(list).post(create))
        .route("/populate", post(populate))
        .route(
            "/proxies/{proxy}",
            get(show).post(update).patch(update).delete(delete),
        )
        .route("/proxies/{proxy}/toxics", get(toxics).post(add_toxic))
        .route(
            "/proxies/{proxy}/toxics/{toxic}",
            get(show_toxic)
                .post(update_toxic)
                .patch(update_toxic)
                .delete(remove_toxic),
        )
        .layer(middleware::from_fn(stop_browsers))
        .with_state(toxiproxy)
}

/// Serves the API on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    toxiproxy: Toxiproxy,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(toxiproxy))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Like Toxiproxy, refuse browsers: a web page must not be able to drive the API of a
/// server on the developer's machine.
async fn stop_browsers(request: Request, next: Next) -> Response {
    let browser = request
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ua| ua.starts_with("Mozilla/"));
    if browser {
        return (StatusCode::FORBIDDEN, "User agent not allowed\n").into_response();
    }
    next.run(request).await
}

async fn version() -> Response {
    let mut response = format!("{{\"version\": \"{API_VERSION}\"}}\n").into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=utf-8"),
    );
    response
}

async fn reset(State(t): State<Toxiproxy>) -> Response {
    no_content(t.reset().await)
}

async fn list(State(t): State<Toxiproxy>) -> Response {
    ok(t.list().await)
}

async fn create(State(t): State<Toxiproxy>, body: Bytes) -> Response {
    answer(t.create(&body).await, StatusCode::CREATED)
}

async fn populate(State(t): State<Toxiproxy>, body: Bytes) -> Response {
    let (status, value) = t.populate(&body).await;
    json_response(
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &value,
    )
}

async fn show(State(t): State<Toxiproxy>, Path(proxy): Path<String>) -> Response {
    answer(t.show(&proxy).await, StatusCode::OK)
}

async fn update(State(t): State<Toxiproxy>, Path(proxy): Path<String>, body: Bytes) -> Response {
    answer(t.update(&proxy, &body).await, StatusCode::OK)
}

async fn delete(State(t): State<Toxiproxy>, Path(proxy): Path<String>) -> Response {
    no_content(t.delete(&proxy).await)
}

async fn toxics(State(t): State<Toxiproxy>, Path(proxy): Path<String>) -> Response {
    answer(t.toxics(&proxy).await, StatusCode::OK)
}

async fn add_toxic(State(t): State<Toxiproxy>, Path(proxy): Path<String>, body: Bytes) -> Response {
    answer(t.add_toxic(&proxy, &body).await, StatusCode::OK)
}

async fn show_toxic(
    State(t): State<Toxiproxy>,
    Path((proxy, toxic)): Path<(String, String)>,
) -> Response {
    answer(t.show_toxic(&proxy, &toxic).await, StatusCode::OK)
}

async fn update_toxic(
    State(t): State<Toxiproxy>,
    Path((proxy, toxic)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    answer(t.update_toxic(&proxy, &toxic, &body).await, StatusCode::OK)
}

async fn remove_toxic(
    State(t): State<Toxiproxy>,
    Path((proxy, toxic)): Path<(String, String)>,
) -> Response {
    no_content(t.remove_toxic(&proxy, &toxic).await)
}
