//! The HTTP API under `/api` (routes listed in [`engine::protocol`]) and the built site.

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, OriginalUri, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use engine::checkpoint::{CONFIG_FILE, WEIGHTS_FILE};
use engine::model::gpt;
use engine::protocol::{CorpusInfo, Health, Job, JobId, JobSpec, JobState, TokenizerSpec};
use engine::train::StepMetrics;
use serde::Deserialize;
use tokio::sync::{broadcast, mpsc};
use tower::ServiceExt;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::services::{ServeDir, ServeFile};
use tower_http::trace::TraceLayer;

use crate::corpora::Corpora;
use crate::error::{Error, Result};
use crate::executor::Executor;
use crate::store::{Cancelled, Store};
use crate::validate;

pub struct AppState {
    pub store: Arc<Store>,
    pub corpora: Arc<Corpora>,
    pub executor: Arc<Executor>,
    /// The bearer token every write must carry.
    pub token: String,
    pub max_concurrent_jobs: usize,
    pub max_upload_bytes: usize,
}

type Shared = State<Arc<AppState>>;

/// The whole service: `/api`, and the site in `site` (if given) for every other path.
pub fn app(state: Arc<AppState>, site: Option<PathBuf>, cors_origins: &[String]) -> Router {
    let upload_limit = state.max_upload_bytes;
    let api = Router::new()
        .route("/health", get(health))
        .route("/jobs", get(jobs_list).post(jobs_create))
        .route("/jobs/{id}", get(jobs_get))
        .route("/jobs/{id}/cancel", post(jobs_cancel))
        .route("/jobs/{id}/events", get(jobs_events))
        .route("/jobs/{id}/metrics", get(jobs_metrics))
        .route("/jobs/{id}/checkpoint/{file}", get(jobs_checkpoint))
        .route("/corpora", get(corpora_list))
        .route(
            "/corpora/{name}",
            put(corpora_upload).layer(DefaultBodyLimit::max(upload_limit)),
        )
        .fallback(api_not_found)
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .with_state(state);

    let mut app = Router::new().nest("/api", api);
    if let Some(site) = site {
        // A single-page app: unknown paths get index.html and the router in the page
        // decides. ServeDir names `.wasm` application/wasm, which streaming compilation needs.
        let index = site.join("index.html");
        app = app.fallback_service(ServeDir::new(site).fallback(ServeFile::new(index)));
    }
    let app = app.layer(TraceLayer::new_for_http());
    if cors_origins.is_empty() {
        // Same origin only: the site this runner serves needs no CORS.
        return app;
    }
    let origins: Vec<HeaderValue> = cors_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o.trim()).ok())
        .collect();
    app.layer(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST, Method::PUT])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::HeaderName::from_static("last-event-id"),
            ]),
    )
}

/// Writes need `Authorization: Bearer <token>`. Reads are open: the browser's EventSource
/// cannot send headers, and jobs hold nothing secret.
async fn require_token(State(state): Shared, req: Request, next: Next) -> Result<Response> {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(next.run(req).await);
    }
    let sent = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match sent {
        Some(token) if constant_time_eq(token.as_bytes(), state.token.as_bytes()) => {
            Ok(next.run(req).await)
        }
        _ => Err(Error::Unauthorized),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn api_not_found(method: Method, OriginalUri(uri): OriginalUri) -> Error {
    Error::NotFound(format!(
        "no route {method} {}; see the route list in engine::protocol",
        uri.path()
    ))
}

async fn health(State(state): Shared) -> Result<Json<Health>> {
    Ok(Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        device: state.executor.device_name(),
        max_concurrent_jobs: state.max_concurrent_jobs,
        queued: state.store.count(JobState::Queued)?,
        running: state.store.count(JobState::Running)?,
    }))
}

async fn jobs_create(State(state): Shared, body: Bytes) -> Result<Response> {
    let spec = parse_spec(&body)?;
    let job = {
        let state = state.clone();
        tokio::task::spawn_blocking(move || -> Result<Job> {
            let spec = validate::check(&spec, &state.corpora, &state.store, &state.executor)?;
            state.store.create_job(&spec)
        })
        .await
        .map_err(anyhow::Error::from)??
    };
    state.executor.wake();
    let location = format!("/api/jobs/{}", job.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(job),
    )
        .into_response())
}

/// Parses a job spec; an error names the field at fault as a dotted path.
fn parse_spec(body: &[u8]) -> Result<JobSpec> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| Error::BadRequest {
        field: None,
        message: format!("the body is not JSON: {e}"),
    })?;
    let spec = parse_at::<JobSpec>(&value, "").map_err(|e| match &e {
        // serde reads an internally tagged enum from a buffer and loses the path inside
        // it; look inside `task` for the real culprit.
        Error::BadRequest {
            field: Some(field), ..
        } if field == "task" => diagnose_task(&value["task"]).unwrap_or(e),
        _ => e,
    })?;
    // Defaults fill every missing field, so a misspelt one would silently train with the
    // default: refuse keys the spec does not have (it re-serialises with all of its own).
    let known = serde_json::to_value(&spec).map_err(anyhow::Error::from)?;
    reject_unknown(&value, &known, "")?;
    Ok(spec)
}

fn reject_unknown(sent: &serde_json::Value, known: &serde_json::Value, prefix: &str) -> Result<()> {
    let (Some(sent), Some(known)) = (sent.as_object(), known.as_object()) else {
        return Ok(());
    };
    for (key, value) in sent {
        let field = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match known.get(key) {
            Some(known) => reject_unknown(value, known, &field)?,
            None => {
                let expected: Vec<&str> = known.keys().map(String::as_str).collect();
                return Err(Error::bad_request(
                    field,
                    format!("unknown field; expected one of {}", expected.join(", ")),
                ));
            }
        }
    }
    Ok(())
}

fn parse_at<T: serde::de::DeserializeOwned>(value: &serde_json::Value, prefix: &str) -> Result<T> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        let field = match (prefix, path.as_str()) {
            ("", "." | "") => None,
            (prefix, "." | "") => Some(prefix.to_string()),
            ("", path) => Some(path.to_string()),
            (prefix, path) => Some(format!("{prefix}.{path}")),
        };
        match field {
            Some(field) => Error::bad_request(field, message),
            None => Error::BadRequest {
                field: None,
                message: format!("the body is not a job spec: {message}"),
            },
        }
    })
}

fn diagnose_task(task: &serde_json::Value) -> Option<Error> {
    match task.get("kind")?.as_str()? {
        "pretrain" => {
            let model = parse_at::<gpt::Config>(task.get("model")?, "task.model");
            let tokenizer = parse_at::<TokenizerSpec>(task.get("tokenizer")?, "task.tokenizer");
            model.err().or(tokenizer.err())
        }
        "fine_tune" => parse_at::<JobId>(task.get("base_job")?, "task.base_job").err(),
        _ => None,
    }
}

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<usize>,
}

async fn jobs_list(State(state): Shared, Query(q): Query<ListQuery>) -> Result<Json<Vec<Job>>> {
    Ok(Json(state.store.jobs(q.limit.unwrap_or(100).min(10_000))?))
}

fn job_id(id: &str) -> Result<JobId> {
    id.parse().map_err(|_| {
        Error::bad_request(
            "id",
            format!("'{id}' is not a job id; job ids are integers"),
        )
    })
}

async fn jobs_get(State(state): Shared, Path(id): Path<String>) -> Result<Json<Job>> {
    Ok(Json(state.store.job(job_id(&id)?)?))
}

async fn jobs_cancel(State(state): Shared, Path(id): Path<String>) -> Result<Response> {
    Ok(match state.store.cancel(job_id(&id)?)? {
        Cancelled::Now(job) => (StatusCode::OK, Json(job)).into_response(),
        // The worker sees the flag before its next step.
        Cancelled::Requested(job) => (StatusCode::ACCEPTED, Json(job)).into_response(),
    })
}

async fn jobs_metrics(
    State(state): Shared,
    Path(id): Path<String>,
) -> Result<Json<Vec<StepMetrics>>> {
    Ok(Json(state.store.metrics(job_id(&id)?)?))
}

#[derive(Deserialize)]
struct EventsQuery {
    /// Replay from after this sequence number; `Last-Event-ID` wins when both are sent.
    after: Option<u64>,
}

/// Server-Sent Events: the job's history after `Last-Event-ID`, then live events, ending
/// once the job is final and everything has been sent.
async fn jobs_events(
    State(state): Shared,
    Path(id): Path<String>,
    Query(q): Query<EventsQuery>,
    headers: HeaderMap,
) -> Result<Response> {
    let id = job_id(&id)?;
    let job = state.store.job(id)?;
    let last_event_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    let after = last_event_id.or(q.after).unwrap_or(0);
    if job.state.is_final() && state.store.events_after(id, after, 1)?.is_empty() {
        // An EventSource reconnects whenever a stream ends; 204 tells it to stop.
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    // Subscribe before the first read, so no event falls between reading and waiting.
    let wakeups = state.store.subscribe();
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(stream_events(state, id, after, wakeups, tx));
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|event| (SseItem::Ok(event), rx))
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// The SSE body's items.
type SseItem = Result<Event, Infallible>;

async fn stream_events(
    state: Arc<AppState>,
    id: JobId,
    mut after: u64,
    mut wakeups: broadcast::Receiver<JobId>,
    tx: mpsc::Sender<Event>,
) {
    let mut shutdown = state.executor.shutdown_signal();
    loop {
        // Read the state first: if it is final, the drain below sees its last event.
        let done = match state.store.job(id) {
            Ok(job) => job.state.is_final(),
            Err(e) => {
                tracing::error!(job = id, "event stream: {e}");
                return;
            }
        };
        loop {
            let batch = match state.store.events_after(id, after, 512) {
                Ok(batch) => batch,
                Err(e) => {
                    tracing::error!(job = id, "event stream: {e}");
                    return;
                }
            };
            if batch.is_empty() {
                break;
            }
            for record in batch {
                after = record.seq;
                let event = Event::default()
                    .id(record.seq.to_string())
                    .json_data(&record)
                    .unwrap_or_else(|_| Event::default().comment("unserialisable event"));
                if tx.send(event).await.is_err() {
                    return; // the client went away
                }
            }
        }
        if done {
            return;
        }
        loop {
            tokio::select! {
                woken = wakeups.recv() => match woken {
                    Ok(job) if job == id => break,
                    Ok(_) => continue,
                    // Missed some wake-ups: re-read to be safe.
                    Err(broadcast::error::RecvError::Lagged(_)) => break,
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = tx.closed() => return,
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
        }
    }
}

/// The latest checkpoint's files; `X-Checkpoint-Step` says which step they hold.
async fn jobs_checkpoint(
    State(state): Shared,
    Path((id, file)): Path<(String, String)>,
    req: Request,
) -> Result<Response> {
    let id = job_id(&id)?;
    if file != CONFIG_FILE && file != WEIGHTS_FILE {
        return Err(Error::NotFound(format!(
            "a checkpoint has no file '{file}'; ask for {CONFIG_FILE} or {WEIGHTS_FILE}"
        )));
    }
    // A new checkpoint may replace the one just looked up; then look again.
    for _ in 0..3 {
        let job = state.store.job(id)?;
        let step = job.checkpoint_step.ok_or_else(|| {
            Error::NotFound(format!(
                "job {id} has no checkpoint yet; one is written every checkpoint_interval steps and at the end"
            ))
        })?;
        let path = state.executor.checkpoint_dir(id, step).join(&file);
        let mut request = Request::new(Body::empty());
        *request.headers_mut() = req.headers().clone();
        let response = ServeFile::new(&path)
            .oneshot(request)
            .await
            .map_err(anyhow::Error::from)?;
        if response.status() == StatusCode::NOT_FOUND {
            continue;
        }
        let mut response = response.map(Body::new);
        let headers = response.headers_mut();
        headers.insert("x-checkpoint-step", HeaderValue::from(step));
        if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{file}\"")) {
            headers.insert(header::CONTENT_DISPOSITION, value);
        }
        return Ok(response);
    }
    Err(Error::Internal(anyhow::anyhow!(
        "the checkpoint files of job {id} kept disappearing"
    )))
}

async fn corpora_list(State(state): Shared) -> Result<Json<Vec<CorpusInfo>>> {
    Ok(Json(state.corpora.list()?))
}

async fn corpora_upload(
    State(state): Shared,
    Path(name): Path<String>,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Result<Response> {
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => Error::PayloadTooLarge {
            limit: state.max_upload_bytes,
        },
        _ => Error::BadRequest {
            field: Some("body".into()),
            message: e.body_text(),
        },
    })?;
    let info = {
        let state = state.clone();
        tokio::task::spawn_blocking(move || state.corpora.upload(&name, &body))
            .await
            .map_err(anyhow::Error::from)??
    };
    Ok((StatusCode::CREATED, Json(info)).into_response())
}
