//! The Python editor: a textarea that indents with Tab, runs with Shift+Enter, keeps the
//! draft in localStorage, and can go back to the starter code.

use leptos::ev::KeyboardEvent;
use leptos::html::Textarea;
use leptos::prelude::*;

use super::Feedback;
use super::python::{self, RunError, TIME_LIMIT_MS};
use crate::content::ExerciseBlock;
use crate::storage;

const INDENT: &str = "    ";

#[component]
pub fn PythonExercise(
    exercise: &'static ExerciseBlock,
    function: String,
    feedback: RwSignal<Feedback>,
) -> impl IntoView {
    let key = storage::draft_key(exercise.id);
    let code = RwSignal::new(storage::get(&key).unwrap_or_else(|| exercise.starter.to_string()));
    let stdout = RwSignal::new(String::new());
    let running = RwSignal::new(false);
    let textarea = NodeRef::<Textarea>::new();
    // After Escape, the next Tab moves focus instead of indenting (keyboard users' way out).
    let escape_pressed = RwSignal::new(false);
    python::prewarm();

    Effect::new(move |_| {
        let text = code.get();
        if text == exercise.starter {
            storage::remove(&key);
        } else {
            storage::set(&key, &text);
        }
    });

    let function = StoredValue::new(function);
    let run = move || {
        if running.get_untracked() {
            return;
        }
        running.set(true);
        stdout.set(String::new());
        let source = code.get_untracked();
        leptos::task::spawn_local(async move {
            let cases = match engine::grade::cases(exercise.id) {
                Ok(c) => c,
                Err(e) => {
                    feedback.set(Feedback::Problem(e.to_string()));
                    running.set(false);
                    return;
                }
            };
            feedback.set(Feedback::Busy("Starting Python…".into()));
            if python::wait_ready().await.is_ok() {
                feedback.set(Feedback::Busy(format!(
                    "Running your code on {} hidden cases…",
                    cases.len()
                )));
            }
            let result = python::run(&source, &function.get_value(), &cases).await;
            let next = match result {
                Ok(out) => {
                    stdout.set(out.stdout);
                    match engine::grade::grade(exercise.id, &out.outcomes) {
                        Ok(v) => Feedback::Verdict(v),
                        Err(e) => Feedback::Problem(e.to_string()),
                    }
                }
                Err(RunError::TimeLimit) => Feedback::Problem(format!(
                    "Time limit: your code ran for more than {} s and was stopped. Look for a \
                     loop that never ends (while True, or a while condition that never changes).",
                    TIME_LIMIT_MS / 1000
                )),
                Err(RunError::Code {
                    message,
                    stdout: out,
                }) => {
                    stdout.set(out);
                    Feedback::Problem(message)
                }
                Err(RunError::Load(message)) => Feedback::Problem(message),
            };
            feedback.set(next);
            running.set(false);
        });
    };

    let on_keydown = move |ev: KeyboardEvent| {
        let Some(el) = textarea.get() else { return };
        match ev.key().as_str() {
            "Enter" if ev.shift_key() => {
                ev.prevent_default();
                run();
            }
            "Escape" => escape_pressed.set(true),
            "Tab" if !escape_pressed.get_untracked() => {
                ev.prevent_default();
                let (value, start, end) = indent(
                    &el.value(),
                    el.selection_start().ok().flatten().unwrap_or(0) as usize,
                    el.selection_end().ok().flatten().unwrap_or(0) as usize,
                    ev.shift_key(),
                );
                el.set_value(&value);
                let _ = el.set_selection_range(start as u32, end as u32);
                code.set(value);
            }
            _ => escape_pressed.set(false),
        }
    };

    view! {
        <div class="editor">
            <textarea
                node_ref=textarea
                spellcheck="false"
                autocapitalize="off"
                autocomplete="off"
                rows=move || code.with(|c| c.lines().count().clamp(8, 30) + 1)
                aria-label=format!("Python code for {}", exercise.title)
                data-testid="editor"
                prop:value=move || code.get()
                on:input=move |ev| code.set(event_target_value(&ev))
                on:keydown=on_keydown
            ></textarea>
            <div class="editor-bar">
                <button
                    class="primary"
                    data-testid="run"
                    on:click=move |_| run()
                    disabled=move || running.get()
                >
                    {move || if running.get() { "Running…" } else { "Run and check" }}
                </button>
                <span class="key-hint">"Shift+Enter runs · Tab indents · Esc Tab leaves"</span>
                <button
                    data-testid="reset"
                    on:click=move |_| {
                        code.set(exercise.starter.to_string());
                        feedback.set(Feedback::Idle);
                        stdout.set(String::new());
                    }
                >
                    "Reset to starter code"
                </button>
            </div>
            <Show when=move || !stdout.get().is_empty()>
                <pre class="stdout" aria-label="printed output">{move || stdout.get()}</pre>
            </Show>
        </div>
    }
}

/// Indents (or with `dedent`, dedents) the selected lines; with no selection, inserts four
/// spaces at the cursor. Positions are UTF-16 offsets, as the DOM reports them. Returns the
/// new text and the new selection.
pub fn indent(text: &str, start: usize, end: usize, dedent: bool) -> (String, usize, usize) {
    let units: Vec<u16> = text.encode_utf16().collect();
    let start = start.min(units.len());
    let end = end.clamp(start, units.len());
    let nl = u16::from(b'\n');
    let line_start = |pos: usize| {
        units[..pos]
            .iter()
            .rposition(|&c| c == nl)
            .map_or(0, |i| i + 1)
    };
    if start == end && !dedent {
        let mut out = units[..start].to_vec();
        out.extend(INDENT.encode_utf16());
        out.extend_from_slice(&units[start..]);
        let pos = start + INDENT.len();
        return (String::from_utf16_lossy(&out), pos, pos);
    }
    let first = line_start(start);
    let mut out = units[..first].to_vec();
    let (mut new_start, mut new_end) = (start, end);
    let mut pos = first;
    let mut first_line = true;
    while pos < units.len() || first_line {
        let line_end = units[pos..]
            .iter()
            .position(|&c| c == nl)
            .map_or(units.len(), |i| pos + i);
        let line = &units[pos..line_end];
        if dedent {
            let n = line
                .iter()
                .take(INDENT.len())
                .take_while(|&&c| c == u16::from(b' '))
                .count();
            out.extend_from_slice(&line[n..]);
            if first_line {
                new_start = new_start.saturating_sub(n.min(start - pos));
            }
            new_end = new_end.saturating_sub(n);
        } else {
            out.extend(INDENT.encode_utf16());
            out.extend_from_slice(line);
            if first_line {
                new_start += INDENT.len();
            }
            new_end += INDENT.len();
        }
        first_line = false;
        if line_end >= units.len() || line_end >= end.max(start + 1) {
            out.extend_from_slice(&units[line_end..]);
            break;
        }
        out.push(nl);
        pos = line_end + 1;
    }
    (
        String::from_utf16_lossy(&out),
        new_start,
        new_end.max(new_start),
    )
}
