//! The runner dashboard: the console of lesson D3 on a page of its own.

use leptos::prelude::*;
use leptos_router::components::A;

use crate::runner::{RunnerConfig, RunnerConsole};

#[component]
pub fn RunnerPage() -> impl IntoView {
    view! {
        <section class="page runner-page" data-testid="runner-page">
            <h1>"Runner"</h1>
            <p class="lede">
                "The native runner trains bigger models than a browser tab can, on the machine's "
                "GPU when it has one. Submit a pretraining job, watch its loss live, and load the "
                "checkpoint back into this tab to sample from it. "
                <A href="/lesson/pretraining-on-the-runner">"Lesson D3"</A>
                " explains the estimates."
            </p>
            <RunnerConsole config=RunnerConfig::default() />
        </section>
    }
}
