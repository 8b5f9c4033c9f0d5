//! Renders a compiled lesson: prose as HTML (with MathML), widgets and exercises in place.

use leptos::prelude::*;

use crate::content::{Block, Lesson};
use crate::exercise::Exercise;
use crate::widgets::Widget;

#[component]
pub fn LessonBody(lesson: &'static Lesson) -> impl IntoView {
    lesson
        .blocks
        .iter()
        .map(|block| match block {
            Block::Html(html) => view! { <div class="prose" inner_html=*html></div> }.into_any(),
            Block::Widget { name, config } => {
                view! { <Widget name=*name config=*config /> }.into_any()
            }
            Block::Exercise(ex) => view! { <Exercise exercise=ex /> }.into_any(),
        })
        .collect_view()
}
