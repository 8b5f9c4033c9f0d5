//! The course map: every track and lesson of the syllabus, with the student's progress.

use leptos::prelude::*;
use leptos_router::components::A;

use crate::content::{self, SyllabusEntry, TRACKS, Track};
use crate::storage::use_progress;

/// `(passed, total)` exercises of a written lesson.
pub fn lesson_progress(slug: &str) -> impl Fn() -> (usize, usize) + use<> {
    let progress = use_progress();
    let lesson = content::lesson_by_slug(slug);
    move || {
        let Some(lesson) = lesson else { return (0, 0) };
        let p = progress.0.get();
        let all: Vec<_> = content::exercises(lesson).collect();
        let done = all.iter().filter(|e| p.passed(e.id, e.hash)).count();
        (done, all.len())
    }
}

#[component]
pub fn CourseMap() -> impl IntoView {
    let live = content::LESSONS.len();
    let total: usize = TRACKS.iter().map(|t| t.lessons.len()).sum();
    view! {
        <section class="page" data-testid="course-map">
            <div class="hero">
                <h1>"How large language models work, by running them"</h1>
                <p class="lede">
                    "A course for engineers who know Python. Every lesson trains or runs a real model
                    in this browser tab, and checks your own code on the spot. "
                    {format!("{live} of {total} lessons are ready; the rest are in preparation.")}
                </p>
            </div>
            {TRACKS.iter().map(|t| view! { <TrackView track=t /> }).collect_view()}
        </section>
    }
}

#[component]
fn TrackView(track: &'static Track) -> impl IntoView {
    view! {
        <section class="track" aria-labelledby=format!("track-{}", track.id)>
            <h2 id=format!("track-{}", track.id)>
                <span class="track-letter">{track.id}</span>
                {track.title}
            </h2>
            <p class="track-blurb">{track.blurb}</p>
            <ol class="lesson-cards">
                {track.lessons.iter().map(|l| view! { <LessonCard entry=l /> }).collect_view()}
            </ol>
        </section>
    }
}

#[component]
fn LessonCard(entry: &'static SyllabusEntry) -> impl IntoView {
    let code = entry.id.to_uppercase();
    match entry.slug {
        Some(slug) => {
            let progress = lesson_progress(slug);
            let progress2 = lesson_progress(slug);
            view! {
                <li class="lesson-card live" data-testid=format!("lesson-card-{}", entry.id)>
                    <A href=format!("/lesson/{slug}")>
                        <span class="lesson-code">{code}</span>
                        <span class="lesson-title">{entry.title}</span>
                    </A>
                    <span class="lesson-runnable">{entry.runnable}</span>
                    <span
                        class="lesson-progress"
                        class:complete=move || { let (d, n) = progress2(); n > 0 && d == n }
                    >
                        {move || {
                            let (done, n) = progress();
                            format!("{done}/{n} exercises")
                        }}
                    </span>
                </li>
            }
            .into_any()
        }
        None => view! {
            <li class="lesson-card pending" data-testid=format!("lesson-card-{}", entry.id)>
                <span class="lesson-code">{code}</span>
                <span class="lesson-title">{entry.title}</span>
                <span class="lesson-runnable">{entry.runnable}</span>
                <span class="badge">"in preparation"</span>
            </li>
        }
        .into_any(),
    }
}
