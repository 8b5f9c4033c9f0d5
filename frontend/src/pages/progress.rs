//! The student's progress: every exercise passed, export to a file, import, erase.

use leptos::prelude::*;
use leptos_router::components::A;
use wasm_bindgen::JsCast;

use crate::content::{self, LESSONS};
use crate::storage::{self, Progress, use_progress};

#[component]
pub fn ProgressPage() -> impl IntoView {
    let progress = use_progress();
    let (message, set_message) = signal(String::new());
    let confirm_erase = RwSignal::new(false);

    let export = move |_| {
        let json = storage::export_all();
        match download("attention-workshop-progress.json", &json) {
            Ok(()) => set_message.set("Exported: your browser saved the file.".into()),
            Err(e) => set_message.set(format!("export failed: {e}")),
        }
    };
    let import = move |ev: leptos::ev::Event| {
        let Some(input) = ev
            .target()
            .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok())
        else {
            return;
        };
        let Some(file) = input.files().and_then(|f| f.get(0)) else {
            return;
        };
        wasm_bindgen_futures::spawn_local(async move {
            let text = wasm_bindgen_futures::JsFuture::from(file.text()).await;
            let result = text
                .ok()
                .and_then(|t| t.as_string())
                .ok_or_else(|| "cannot read the file".to_string())
                .and_then(|t| storage::import_all(&t));
            match result {
                Ok(n) => {
                    progress.0.set(Progress::load());
                    set_message.set(format!("Imported {n} saved items."));
                }
                Err(e) => set_message.set(e),
            }
        });
    };
    let erase = move |_| {
        if confirm_erase.get_untracked() {
            storage::erase_all();
            progress.0.set(Progress::default());
            confirm_erase.set(false);
            set_message
                .set("Erased: progress, drafts and settings are gone from this browser.".into());
        } else {
            confirm_erase.set(true);
        }
    };

    view! {
        <section class="page narrow" data-testid="progress-page">
            <h1>"Your progress"</h1>
            <p>
                "Progress, drafts and settings stay in this browser's local storage; nothing is
                sent anywhere. Export them to move to another browser."
            </p>
            {LESSONS
                .iter()
                .map(|lesson| {
                    view! {
                        <h2>
                            <A href=format!("/lesson/{}", lesson.slug)>
                                {format!("{} {}", lesson.id.to_uppercase(), lesson.title)}
                            </A>
                        </h2>
                        <ul class="progress-list">
                            {content::exercises(lesson)
                                .map(|e| {
                                    let passed = move || progress.0.with(|p| p.passed(e.id, e.hash));
                                    view! {
                                        <li class:passed=passed>
                                            {move || if passed() { "✓ " } else { "○ " }}
                                            {e.title}
                                        </li>
                                    }
                                })
                                .collect_view()}
                        </ul>
                    }
                })
                .collect_view()}
            <div class="actions">
                <button on:click=export data-testid="export">"Export progress"</button>
                <label class="button">
                    "Import…"
                    <input type="file" accept="application/json,.json" on:change=import class="visually-hidden" />
                </label>
                <button class="danger" on:click=erase data-testid="erase">
                    {move || if confirm_erase.get() { "Click again to erase everything" } else { "Erase progress" }}
                </button>
            </div>
            <p class="status" role="status">{message}</p>
        </section>
    }
}

/// Saves `text` as a file through a temporary object URL.
fn download(name: &str, text: &str) -> Result<(), String> {
    let parts = js_sys::Array::of1(&text.into());
    let opts = web_sys::BlobPropertyBag::new();
    opts.set_type("application/json");
    let blob = web_sys::Blob::new_with_str_sequence_and_options(&parts, &opts)
        .map_err(|_| "cannot create the file")?;
    let url =
        web_sys::Url::create_object_url_with_blob(&blob).map_err(|_| "cannot create a URL")?;
    let a: web_sys::HtmlAnchorElement = document()
        .create_element("a")
        .map_err(|_| "no document")?
        .unchecked_into();
    a.set_href(&url);
    a.set_download(name);
    a.click();
    let _ = web_sys::Url::revoke_object_url(&url);
    Ok(())
}
