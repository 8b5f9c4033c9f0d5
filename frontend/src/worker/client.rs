//! The page's handle on the engine worker: one worker per tab, shared by every widget.
//! Widgets send [`Request`]s and subscribe to [`Event`]s for as long as they are mounted.

use std::cell::RefCell;
use std::rc::Rc;

use wasm_bindgen::prelude::*;
use web_sys::{MessageEvent, Worker};

use leptos::prelude::*;

use super::protocol::{ComputeDevice, Event, Request};
use crate::storage;

type Listener = Rc<dyn Fn(&Event)>;

struct Inner {
    worker: Worker,
    /// Requests sent before the worker's wasm is running: a message that arrives before the
    /// worker sets its handler is dropped, so they wait for its `Ready`.
    queue: RefCell<Option<Vec<String>>>,
    listeners: RefCell<Vec<(u64, Listener)>>,
    next_id: RefCell<u64>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
}

/// A cheap, clonable handle.
#[derive(Clone)]
pub struct EngineClient(Rc<Inner>);

thread_local! {
    static CLIENT: RefCell<Option<EngineClient>> = const { RefCell::new(None) };
    static DEVICE: RwSignal<Option<DeviceStatus>> = RwSignal::new(None);
}

/// Where the student wants sampling to run, remembered across visits.
const DEVICE_KEY: &str = "aw.device";

/// The worker's last `Event::Device`: where sampling runs and why.
#[derive(Clone, Debug, PartialEq)]
pub struct DeviceStatus {
    pub active: ComputeDevice,
    pub adapter: Option<String>,
    pub notice: Option<String>,
}

/// The device status as a signal, `None` until the worker has answered (or never started).
pub fn device_status() -> RwSignal<Option<DeviceStatus>> {
    DEVICE.with(|d| *d)
}

/// True unless the student switched WebGPU off.
pub fn webgpu_wanted() -> bool {
    storage::get(DEVICE_KEY).as_deref() != Some("cpu")
}

/// Remembers the choice and tells the worker, if it runs (else it is told when it starts).
pub fn set_webgpu_wanted(webgpu: bool) {
    storage::set(DEVICE_KEY, if webgpu { "webgpu" } else { "cpu" });
    if let Some(client) = CLIENT.with(|c| c.borrow().clone()) {
        client.send(&Request::SetDevice { webgpu });
    }
}

/// Unsubscribes when dropped.
pub struct Subscription {
    client: EngineClient,
    id: u64,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.client
            .0
            .listeners
            .borrow_mut()
            .retain(|(id, _)| *id != self.id);
    }
}

impl EngineClient {
    /// The tab's worker, started on first use.
    pub fn get() -> Result<Self, String> {
        CLIENT.with(|c| {
            let mut c = c.borrow_mut();
            if let Some(client) = c.as_ref() {
                return Ok(client.clone());
            }
            let client = Self::start()?;
            client.send(&Request::SetDevice {
                webgpu: webgpu_wanted(),
            });
            *c = Some(client.clone());
            Ok(client)
        })
    }

    fn start() -> Result<Self, String> {
        // trunk builds the worker with wasm-bindgen's no-modules target and this loader shim.
        let worker = Worker::new("/engine-worker_loader.js")
            .map_err(|e| format!("cannot start the engine worker: {e:?}"))?;
        let inner = Rc::new_cyclic(|weak: &std::rc::Weak<Inner>| {
            let weak = weak.clone();
            let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
                let Some(inner) = weak.upgrade() else { return };
                let Some(text) = ev.data().as_string() else {
                    return;
                };
                let event: Event = match serde_json::from_str(&text) {
                    Ok(e) => e,
                    Err(e) => Event::Error {
                        what: "worker".into(),
                        message: format!("unreadable message from the engine worker: {e}"),
                    },
                };
                if event == Event::Ready
                    && let Some(queued) = inner.queue.borrow_mut().take()
                {
                    // Read by the first-load benchmark: the engine's wasm is running.
                    if let Some(p) = web_sys::window().and_then(|w| w.performance()) {
                        let _ = p.mark("aw-engine-ready");
                    }
                    for text in queued {
                        let _ = inner.worker.post_message(&JsValue::from_str(&text));
                    }
                }
                if let Event::Device {
                    active,
                    adapter,
                    notice,
                } = &event
                {
                    device_status().set(Some(DeviceStatus {
                        active: *active,
                        adapter: adapter.clone(),
                        notice: notice.clone(),
                    }));
                }
                // Copy the list: a listener may subscribe or unsubscribe while it runs.
                let listeners: Vec<Listener> = inner
                    .listeners
                    .borrow()
                    .iter()
                    .map(|(_, l)| l.clone())
                    .collect();
                for l in listeners {
                    l(&event);
                }
            });
            worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
            Inner {
                worker: worker.clone(),
                queue: RefCell::new(Some(Vec::new())),
                listeners: RefCell::new(Vec::new()),
                next_id: RefCell::new(0),
                _on_message: on_message,
            }
        });
        Ok(Self(inner))
    }

    pub fn send(&self, request: &Request) {
        let text = serde_json::to_string(request).expect("requests serialize");
        if let Some(queue) = self.0.queue.borrow_mut().as_mut() {
            queue.push(text);
            return;
        }
        let _ = self.0.worker.post_message(&JsValue::from_str(&text));
    }

    /// Calls `f` on every event until the returned subscription is dropped.
    pub fn subscribe(&self, f: impl Fn(&Event) + 'static) -> Subscription {
        let id = {
            let mut n = self.0.next_id.borrow_mut();
            *n += 1;
            *n
        };
        self.0.listeners.borrow_mut().push((id, Rc::new(f)));
        Subscription {
            client: self.clone(),
            id,
        }
    }
}
