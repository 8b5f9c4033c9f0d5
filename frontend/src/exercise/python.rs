//! The page's side of the Pyodide worker (`js/py-worker.js`): one worker per tab, started on
//! first use, terminated when a run exceeds [`TIME_LIMIT_MS`].

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use engine::grade::{Case, Outcome};
use js_sys::{Function, Promise};
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{MessageEvent, Worker, WorkerOptions, WorkerType};

/// A run longer than this is an infinite loop or far too slow: the worker is terminated.
pub const TIME_LIMIT_MS: i32 = 3_000;
/// Pyodide's cold start is ~3.5 s here; a minute means the files are not being served.
const LOAD_LIMIT_MS: i32 = 60_000;
const TIMEOUT: &str = "__timeout__";

#[derive(Debug, Clone, PartialEq)]
pub enum RunError {
    TimeLimit,
    /// Python could not start (files missing, offline, ...).
    Load(String),
    /// The code did not run at all: syntax error, missing function.
    Code {
        message: String,
        stdout: String,
    },
}

pub struct RunOutput {
    pub outcomes: Vec<Outcome>,
    pub stdout: String,
}

#[derive(Serialize)]
struct Request<'a> {
    id: u32,
    code: &'a str,
    function: &'a str,
    cases: Vec<&'a [serde_json::Value]>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Reply {
    Ready,
    LoadError {
        message: String,
    },
    Result {
        id: u32,
        #[serde(default)]
        outcomes: Option<Vec<Outcome>>,
        #[serde(default)]
        error: Option<String>,
        #[serde(default)]
        stdout: String,
    },
}

struct PyWorker {
    worker: Worker,
    /// Resolves with `null` when Python is ready, or with the load error's message.
    ready: Promise,
    pending: Rc<RefCell<HashMap<u32, Function>>>,
    next_id: RefCell<u32>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
}

thread_local! {
    static PY: RefCell<Option<Rc<PyWorker>>> = const { RefCell::new(None) };
}

impl PyWorker {
    fn start() -> Result<Self, RunError> {
        let opts = WorkerOptions::new();
        opts.set_type(WorkerType::Module);
        let worker = Worker::new_with_options("/py-worker.js", &opts)
            .map_err(|e| RunError::Load(format!("cannot start the Python worker: {e:?}")))?;
        let ready_resolve: Rc<RefCell<Option<Function>>> = Rc::default();
        let slot = ready_resolve.clone();
        let ready = Promise::new(&mut |resolve, _| *slot.borrow_mut() = Some(resolve));
        let pending: Rc<RefCell<HashMap<u32, Function>>> = Rc::default();
        let pending2 = pending.clone();
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
            let Some(text) = ev.data().as_string() else {
                return;
            };
            let Ok(reply) = serde_json::from_str::<Reply>(&text) else {
                return;
            };
            match reply {
                Reply::Ready => {
                    if let Some(r) = ready_resolve.borrow_mut().take() {
                        let _ = r.call1(&JsValue::NULL, &JsValue::NULL);
                    }
                }
                Reply::LoadError { message } => {
                    if let Some(r) = ready_resolve.borrow_mut().take() {
                        let _ = r.call1(&JsValue::NULL, &JsValue::from_str(&message));
                    }
                }
                Reply::Result { id, .. } => {
                    if let Some(r) = pending2.borrow_mut().remove(&id) {
                        let _ = r.call1(&JsValue::NULL, &JsValue::from_str(&text));
                    }
                }
            }
        });
        worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        Ok(Self {
            worker,
            ready,
            pending,
            next_id: RefCell::new(0),
            _on_message: on_message,
        })
    }
}

fn current() -> Result<Rc<PyWorker>, RunError> {
    PY.with(|py| {
        let mut py = py.borrow_mut();
        if let Some(w) = py.as_ref() {
            return Ok(w.clone());
        }
        let w = Rc::new(PyWorker::start()?);
        *py = Some(w.clone());
        Ok(w)
    })
}

fn kill() {
    PY.with(|py| {
        if let Some(w) = py.borrow_mut().take() {
            w.worker.terminate();
        }
    });
}

/// Starts Python in the background so that the first run does not wait for it.
pub fn prewarm() {
    let _ = current();
}

/// A promise that resolves with `TIMEOUT` after `ms`.
fn sleep(ms: i32) -> Promise {
    Promise::new(&mut |resolve, _| {
        let _ = web_sys::window()
            .expect("a window")
            .set_timeout_with_callback_and_timeout_and_arguments_1(
                &resolve,
                ms,
                &JsValue::from_str(TIMEOUT),
            );
    })
}

async fn race(p: &Promise, ms: i32) -> Option<JsValue> {
    let both = js_sys::Array::of2(p, &sleep(ms));
    let v = JsFuture::from(Promise::race(&both)).await.ok()?;
    (v.as_string().as_deref() != Some(TIMEOUT)).then_some(v)
}

/// Is Python loaded? (`false` while the first start is under way.)
pub async fn wait_ready() -> Result<(), RunError> {
    let w = current()?;
    match race(&w.ready, LOAD_LIMIT_MS).await {
        None => {
            kill();
            Err(RunError::Load(
                "Python did not start within a minute; reload the page".into(),
            ))
        }
        Some(v) if v.is_null() => Ok(()),
        Some(v) => {
            kill();
            Err(RunError::Load(format!(
                "Python failed to start: {}",
                v.as_string().unwrap_or_default()
            )))
        }
    }
}

/// Calls `function` from `code` on every case, under the time limit.
pub async fn run(code: &str, function: &str, cases: &[Case]) -> Result<RunOutput, RunError> {
    wait_ready().await?;
    let w = current()?;
    let id = {
        let mut n = w.next_id.borrow_mut();
        *n += 1;
        *n
    };
    let request = Request {
        id,
        code,
        function,
        cases: cases.iter().map(|c| c.args.as_slice()).collect(),
    };
    let text = serde_json::to_string(&request).expect("requests serialize");
    let pending = w.pending.clone();
    let reply = Promise::new(&mut |resolve, _| {
        pending.borrow_mut().insert(id, resolve);
    });
    w.worker
        .post_message(&JsValue::from_str(&text))
        .map_err(|e| RunError::Load(format!("cannot reach the Python worker: {e:?}")))?;
    let Some(v) = race(&reply, TIME_LIMIT_MS).await else {
        // `while True: pass` ends here: the only way to stop running Python is to end its
        // worker. The next run starts a fresh one (~2 s).
        kill();
        prewarm();
        return Err(RunError::TimeLimit);
    };
    let reply: Reply = serde_json::from_str(&v.as_string().unwrap_or_default())
        .map_err(|e| RunError::Load(format!("unreadable reply from Python: {e}")))?;
    match reply {
        Reply::Result {
            outcomes: Some(outcomes),
            stdout,
            ..
        } => Ok(RunOutput { outcomes, stdout }),
        Reply::Result { error, stdout, .. } => Err(RunError::Code {
            message: error.unwrap_or_else(|| "your code did not run".into()),
            stdout,
        }),
        _ => Err(RunError::Load("unexpected reply from Python".into())),
    }
}
