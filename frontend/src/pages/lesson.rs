//! A lesson page: header, contents, the compiled blocks, previous/next.

use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::{use_location, use_params_map};

use crate::content::{self, Lesson};
use crate::lesson::LessonBody;
use crate::pages::NotFound;
use crate::pages::course_map::lesson_progress;

#[component]
pub fn LessonPage() -> impl IntoView {
    let params = use_params_map();
    let slug = move || params.with(|p| p.get("slug").unwrap_or_default());
    move || match content::lesson_by_slug(&slug()) {
        Some(lesson) => view! { <LessonView lesson=lesson /> }.into_any(),
        None => view! { <NotFound /> }.into_any(),
    }
}

#[component]
fn LessonView(lesson: &'static Lesson) -> impl IntoView {
    let location = use_location();
    // After the blocks are in the DOM, honour a #section in the address (a reload or a shared
    // link): the browser tried before the client-side page existed.
    Effect::new(move |_| {
        let hash = location.hash.get();
        if let Some(id) = hash.strip_prefix('#').filter(|h| !h.is_empty()) {
            let id = id.to_string();
            request_animation_frame(move || {
                if let Some(el) = document().get_element_by_id(&id) {
                    el.scroll_into_view();
                }
            });
        } else {
            window().scroll_to_with_x_and_y(0.0, 0.0);
        }
    });
    let title = lesson.title;
    Effect::new(move |_| document().set_title(&format!("{title} · Attention Workshop")));
    on_cleanup(|| document().set_title("Attention Workshop"));

    let order = content::live_order();
    let pos = order.iter().position(|l| l.id == lesson.id);
    let prev = pos
        .and_then(|i| i.checked_sub(1))
        .and_then(|i| order.get(i).copied());
    let next = pos.and_then(|i| order.get(i + 1).copied());
    let progress = lesson_progress(lesson.slug);

    view! {
        <article class="lesson" data-testid=format!("lesson-{}", lesson.id)>
            <header class="lesson-header">
                <p class="crumbs">
                    <A href="/">"Course map"</A>
                    " · "
                    {lesson.id.to_uppercase()}
                </p>
                <h1>{lesson.title}</h1>
                <p class="lede">{lesson.summary}</p>
                <p class="meta">
                    {format!("about {} minutes", lesson.minutes)}
                    " · "
                    {move || {
                        let (d, n) = progress();
                        format!("{d} of {n} exercises passed")
                    }}
                    {(!lesson.prerequisites.is_empty())
                        .then(|| {
                            view! {
                                " · before this: "
                                {lesson
                                    .prerequisites
                                    .iter()
                                    .map(|id| prerequisite(id))
                                    .collect_view()}
                            }
                        })}
                </p>
            </header>
            <nav class="toc" aria-label="sections">
                <h2>"Sections"</h2>
                <ol>
                    {lesson
                        .sections
                        .iter()
                        .map(|(anchor, title)| {
                            view! {
                                <li>
                                    <a href=format!("#{anchor}")>{*title}</a>
                                </li>
                            }
                        })
                        .collect_view()}
                </ol>
            </nav>
            <LessonBody lesson=lesson />
            <nav class="pager" aria-label="lessons">
                {prev
                    .map(|l| {
                        view! {
                            <A href=format!("/lesson/{}", l.slug) attr:class="prev">
                                {format!("← {} {}", l.id.to_uppercase(), l.title)}
                            </A>
                        }
                    })}
                <span class="spacer"></span>
                {next
                    .map(|l| {
                        view! {
                            <A href=format!("/lesson/{}", l.slug) attr:class="next">
                                {format!("{} {} →", l.id.to_uppercase(), l.title)}
                            </A>
                        }
                    })}
            </nav>
        </article>
    }
}

fn prerequisite(id: &'static str) -> AnyView {
    let title = content::syllabus_title(id).unwrap_or(id);
    let label = format!("{} {}", id.to_uppercase(), title);
    match content::lesson_by_id(id) {
        Some(l) => view! { <A href=format!("/lesson/{}", l.slug) attr:class="prereq">{label}</A> }
            .into_any(),
        None => view! { <span class="prereq pending">{label}</span> }.into_any(),
    }
}
