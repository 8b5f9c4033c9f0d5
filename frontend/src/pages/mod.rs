//! One file per page.

mod bench;
mod course_map;
mod lesson;
mod progress;
mod runner;

pub use bench::BenchPage;
pub use course_map::CourseMap;
pub use lesson::LessonPage;
pub use progress::ProgressPage;
pub use runner::RunnerPage;

use leptos::prelude::*;
use leptos_router::components::A;

#[component]
pub fn NotFound() -> impl IntoView {
    view! {
        <section class="page narrow">
            <h1>"Page not found"</h1>
            <p>"There is no page at this address. The course map lists every lesson."</p>
            <p><A href="/">"Go to the course map"</A></p>
        </section>
    }
}
