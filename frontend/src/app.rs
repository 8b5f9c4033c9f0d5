//! The shell: router, header, theme and keyboard shortcuts.

use leptos::ev;
use leptos::prelude::*;
use leptos_router::components::{A, Route, Router, Routes};
use leptos_router::hooks::{use_location, use_navigate};
use leptos_router::path;

use crate::content;
use crate::pages::{BenchPage, CourseMap, LessonPage, NotFound, ProgressPage, RunnerPage};
use crate::storage::{self, Progress, ProgressStore};
use crate::worker::client;
use crate::worker::protocol::ComputeDevice;

const THEME_KEY: &str = "aw.theme";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Theme {
    Light,
    Dark,
}

impl Theme {
    fn initial() -> Self {
        match storage::get(THEME_KEY).as_deref() {
            Some("dark") => Theme::Dark,
            Some("light") => Theme::Light,
            _ => {
                let prefers_dark = window()
                    .match_media("(prefers-color-scheme: dark)")
                    .ok()
                    .flatten()
                    .is_some_and(|m| m.matches());
                if prefers_dark {
                    Theme::Dark
                } else {
                    Theme::Light
                }
            }
        }
    }

    fn name(self) -> &'static str {
        match self {
            Theme::Light => "light",
            Theme::Dark => "dark",
        }
    }

    fn toggled(self) -> Self {
        match self {
            Theme::Light => Theme::Dark,
            Theme::Dark => Theme::Light,
        }
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_context(ProgressStore(RwSignal::new(Progress::load())));
    let theme = RwSignal::new(Theme::initial());
    // Effect: the theme lives on <html> (so the page background follows) and in storage.
    Effect::new(move |_| {
        let t = theme.get();
        if let Some(root) = document().document_element() {
            let _ = root.set_attribute("data-theme", t.name());
        }
        storage::set(THEME_KEY, t.name());
    });
    let help_open = RwSignal::new(false);

    view! {
        <Router>
            <a class="skip-link" href="#main">"Skip to content"</a>
            <header class="site-header">
                <A href="/" attr:class="brand">
                    <span class="brand-mark" aria-hidden="true">"◆"</span>
                    " Attention Workshop"
                </A>
                <nav aria-label="site">
                    <A href="/">"Course map"</A>
                    <A href="/progress">"Progress"</A>
                    <A href="/runner">"Runner"</A>
                    <DeviceSwitch />
                    <button
                        class="icon-button"
                        data-testid="theme-toggle"
                        title="Switch theme (t)"
                        aria-label=move || format!("switch to {} theme", theme.get().toggled().name())
                        on:click=move |_| theme.update(|t| *t = t.toggled())
                    >
                        {move || if theme.get() == Theme::Dark { "☀ Light" } else { "☾ Dark" }}
                    </button>
                    <button
                        class="icon-button"
                        title="Keyboard shortcuts (?)"
                        aria-label="keyboard shortcuts"
                        on:click=move |_| help_open.update(|o| *o = !*o)
                    >
                        "⌨"
                    </button>
                </nav>
            </header>
            <Shortcuts theme=theme help_open=help_open />
            <main id="main" tabindex="-1">
                <Routes fallback=NotFound>
                    <Route path=path!("/") view=CourseMap />
                    <Route path=path!("/progress") view=ProgressPage />
                    <Route path=path!("/runner") view=RunnerPage />
                    <Route path=path!("/bench") view=BenchPage />
                    <Route path=path!("/lesson/:slug") view=LessonPage />
                </Routes>
            </main>
            <footer class="site-footer">
                "Attention Workshop · models train in your browser tab · nothing leaves this machine · "
                <A href="/bench">"benchmark this browser"</A>
            </footer>
        </Router>
    }
}

/// Where the engine worker samples: WebGPU when the browser has it, or the CPU. Shows what
/// the worker reports once it runs, with the reason when WebGPU is not in use.
#[component]
fn DeviceSwitch() -> impl IntoView {
    let wanted = RwSignal::new(client::webgpu_wanted());
    let status = client::device_status();
    let label = move || match status.get() {
        None => "(engine idle)".to_string(),
        Some(s) => match (s.active, s.adapter) {
            (ComputeDevice::Webgpu, Some(adapter)) => format!("WebGPU · {adapter}"),
            (active, _) => active.label().to_string(),
        },
    };
    let notice = move || status.get().and_then(|s| s.notice);
    view! {
        <label
            class="device-switch"
            title=move || notice().unwrap_or_else(|| "Where sampling runs".into())
        >
            <input
                type="checkbox"
                data-testid="device-webgpu"
                prop:checked=move || wanted.get()
                on:change=move |ev| {
                    let on = event_target_checked(&ev);
                    wanted.set(on);
                    client::set_webgpu_wanted(on);
                }
            />
            " WebGPU "
            <span class="device-status" data-testid="device-status">
                {label}
                {move || notice().map(|_| " ⚠")}
            </span>
        </label>
    }
}

/// Global keys: t theme, m map, p progress, [ and ] previous/next lesson, ? help.
#[component]
fn Shortcuts(theme: RwSignal<Theme>, help_open: RwSignal<bool>) -> impl IntoView {
    let navigate = use_navigate();
    let location = use_location();
    let handle = window_event_listener(ev::keydown, move |e| {
        if e.ctrl_key() || e.meta_key() || e.alt_key() {
            return;
        }
        let typing = e
            .target()
            .and_then(|t| wasm_bindgen::JsCast::dyn_into::<web_sys::Element>(t).ok())
            .is_some_and(|el| {
                matches!(el.tag_name().as_str(), "INPUT" | "TEXTAREA" | "SELECT")
                    || el.has_attribute("contenteditable")
            });
        if typing {
            return;
        }
        let go = |path: &str| navigate(path, Default::default());
        match e.key().as_str() {
            "t" => theme.update(|t| *t = t.toggled()),
            "m" => go("/"),
            "p" => go("/progress"),
            "?" => help_open.update(|o| *o = !*o),
            "Escape" => help_open.set(false),
            "[" | "]" => {
                let path = location.pathname.get_untracked();
                let order = content::live_order();
                if let Some(slug) = path.strip_prefix("/lesson/")
                    && let Some(i) = order.iter().position(|l| l.slug == slug)
                {
                    let j = if e.key() == "]" {
                        i + 1
                    } else {
                        i.wrapping_sub(1)
                    };
                    if let Some(next) = order.get(j) {
                        go(&format!("/lesson/{}", next.slug));
                    }
                }
            }
            _ => {}
        }
    });
    on_cleanup(move || handle.remove());
    // The dialog takes focus when it opens (so a keyboard or screen-reader user lands in it),
    // and gives it back to where it was when it closes.
    let dialog = NodeRef::<leptos::html::Div>::new();
    let focus_before = StoredValue::new_local(None::<web_sys::HtmlElement>);
    Effect::new(move |_| {
        if help_open.get() {
            if let Some(el) = dialog.get() {
                if focus_before.with_value(Option::is_none) {
                    let active = document().active_element().and_then(|e| {
                        wasm_bindgen::JsCast::dyn_into::<web_sys::HtmlElement>(e).ok()
                    });
                    focus_before.set_value(active);
                }
                let _ = el.focus();
            }
        } else if let Some(el) = focus_before.try_update_value(Option::take).flatten() {
            let _ = el.focus();
        }
    });
    view! {
        <Show when=move || help_open.get()>
            <div
                class="shortcuts"
                role="dialog"
                aria-modal="true"
                aria-label="keyboard shortcuts"
                tabindex="-1"
                node_ref=dialog
                data-testid="shortcuts-dialog"
            >
                <h2>"Keyboard"</h2>
                <dl>
                    <dt><kbd>"Tab"</kbd></dt><dd>"move between links, buttons and editors"</dd>
                    <dt><kbd>"m"</kbd></dt><dd>"course map"</dd>
                    <dt><kbd>"p"</kbd></dt><dd>"progress"</dd>
                    <dt><kbd>"["</kbd>" "<kbd>"]"</kbd></dt><dd>"previous / next lesson"</dd>
                    <dt><kbd>"t"</kbd></dt><dd>"light / dark theme"</dd>
                    <dt><kbd>"Shift+Enter"</kbd></dt><dd>"run the code in an editor"</dd>
                    <dt><kbd>"Esc"</kbd>" "<kbd>"Tab"</kbd></dt><dd>"leave an editor (Tab alone indents)"</dd>
                </dl>
                <button on:click=move |_| help_open.set(false)>"Close"</button>
            </div>
        </Show>
    }
}
