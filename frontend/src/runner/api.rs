//! The runner's HTTP API as the page calls it: `fetch` for requests, `EventSource` for a job's
//! events. Types are `engine::protocol`'s, the same ones the runner compiles against.
//!
//! Reads are open (an `EventSource` cannot send headers); writes carry the bearer token.

use engine::protocol::{ApiError, CorpusInfo, EventRecord, Health, Job, JobId, JobSpec};
use engine::train::StepMetrics;
use serde::de::DeserializeOwned;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{EventSource, MessageEvent};

/// Where the runner is and the token its writes need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conn {
    /// Origin of the runner, e.g. `http://127.0.0.1:8080`, without a trailing slash.
    pub base: String,
    pub token: String,
}

/// A failed call: the runner's message, and the field at fault for a 400.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    pub status: u16,
    pub message: String,
    pub field: Option<String>,
}

impl Failure {
    fn network(message: String) -> Self {
        Self {
            status: 0,
            message,
            field: None,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.field, self.status) {
            (Some(field), _) => write!(f, "{field}: {}", self.message),
            (None, 0) => write!(f, "{}", self.message),
            (None, status) => write!(f, "HTTP {status}: {}", self.message),
        }
    }
}

impl Conn {
    pub fn url(&self, path: &str) -> String {
        format!("{}/api{path}", self.base)
    }

    /// Folder URL of a job's latest checkpoint (`config.json` + `model.safetensors` in it),
    /// the form the engine worker's `LoadModel` takes.
    pub fn checkpoint_url(&self, id: JobId) -> String {
        self.url(&format!("/jobs/{id}/checkpoint"))
    }

    pub async fn health(&self) -> Result<Health, Failure> {
        self.get("/health").await
    }

    pub async fn jobs(&self) -> Result<Vec<Job>, Failure> {
        self.get("/jobs").await
    }

    pub async fn job(&self, id: JobId) -> Result<Job, Failure> {
        self.get(&format!("/jobs/{id}")).await
    }

    pub async fn metrics(&self, id: JobId) -> Result<Vec<StepMetrics>, Failure> {
        self.get(&format!("/jobs/{id}/metrics")).await
    }

    pub async fn corpora(&self) -> Result<Vec<CorpusInfo>, Failure> {
        self.get("/corpora").await
    }

    pub async fn submit(&self, spec: &JobSpec) -> Result<Job, Failure> {
        let body = serde_json::to_string(spec).expect("job specs serialize");
        self.write("POST", "/jobs", Some(body), "application/json")
            .await
    }

    pub async fn cancel(&self, id: JobId) -> Result<Job, Failure> {
        self.write("POST", &format!("/jobs/{id}/cancel"), None, "")
            .await
    }

    pub async fn upload_corpus(&self, name: &str, text: String) -> Result<CorpusInfo, Failure> {
        self.write(
            "PUT",
            &format!("/corpora/{name}"),
            Some(text),
            "text/plain; charset=utf-8",
        )
        .await
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Failure> {
        self.call("GET", path, None, "", false).await
    }

    async fn write<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<String>,
        content_type: &str,
    ) -> Result<T, Failure> {
        if self.token.trim().is_empty() {
            return Err(Failure::network(
                "this needs the runner's token: it prints it when it starts, and keeps it in <data-dir>/token".into(),
            ));
        }
        self.call(method, path, body, content_type, true).await
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<String>,
        content_type: &str,
        auth: bool,
    ) -> Result<T, Failure> {
        let url = self.url(path);
        let js = |e: JsValue| Failure::network(format!("{method} {url}: {e:?}"));
        let headers = web_sys::Headers::new().map_err(js)?;
        if auth {
            headers
                .set("Authorization", &format!("Bearer {}", self.token.trim()))
                .map_err(js)?;
        }
        if !content_type.is_empty() {
            headers.set("Content-Type", content_type).map_err(js)?;
        }
        let init = web_sys::RequestInit::new();
        init.set_method(method);
        init.set_headers(&headers);
        if let Some(body) = &body {
            init.set_body(&JsValue::from_str(body));
        }
        let request = web_sys::Request::new_with_str_and_init(&url, &init).map_err(js)?;
        let response = JsFuture::from(window().fetch_with_request(&request))
            .await
            .map_err(|_| {
                Failure::network(format!(
                    "cannot reach {url}: is the runner running there (and, from another origin, started with --cors-origin for this page)?"
                ))
            })?;
        let response: web_sys::Response = response.unchecked_into();
        let text = JsFuture::from(response.text().map_err(js)?)
            .await
            .map_err(js)?
            .as_string()
            .unwrap_or_default();
        let status = response.status();
        if !response.ok() {
            return Err(match serde_json::from_str::<ApiError>(&text) {
                Ok(e) => Failure {
                    status,
                    message: e.error,
                    field: e.field,
                },
                Err(_) => Failure {
                    status,
                    message: if text.is_empty() {
                        response.status_text()
                    } else {
                        text
                    },
                    field: None,
                },
            });
        }
        serde_json::from_str(&text).map_err(|e| Failure {
            status,
            message: format!("{url} answered something that is not the runner's API: {e}"),
            field: None,
        })
    }
}

fn window() -> web_sys::Window {
    web_sys::window().expect("the site runs in a window")
}

/// A job's event stream. The browser reconnects by itself with `Last-Event-ID` after a
/// dropped connection, and the runner answers 204 once a finished job has nothing left, which
/// ends it. Closed when dropped.
pub struct EventStream {
    source: EventSource,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
}

impl EventStream {
    /// Replays the job's whole history from its first event, then follows it live.
    pub fn open(
        conn: &Conn,
        id: JobId,
        mut on_record: impl FnMut(EventRecord) + 'static,
    ) -> Result<Self, String> {
        let url = conn.url(&format!("/jobs/{id}/events"));
        let source = EventSource::new(&url).map_err(|e| format!("cannot open {url}: {e:?}"))?;
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
            let Some(text) = ev.data().as_string() else {
                return;
            };
            if let Ok(record) = serde_json::from_str::<EventRecord>(&text) {
                on_record(record);
            }
        });
        source.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        Ok(Self {
            source,
            _on_message: on_message,
        })
    }

    pub fn close(&self) {
        self.source.close();
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.source.close();
    }
}
