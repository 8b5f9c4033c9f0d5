//! Graded exercises: a Python editor, a number, or a choice, all graded by `engine::grade`.

mod editor;
pub mod python;

use engine::grade::{self, Kind, Outcome, Verdict};
use leptos::prelude::*;

use crate::content::ExerciseBlock;
use crate::storage::use_progress;
use editor::PythonExercise;

/// What the feedback panel shows.
#[derive(Clone, Debug, PartialEq)]
pub enum Feedback {
    Idle,
    Busy(String),
    Verdict(Verdict),
    /// The answer could not be graded (syntax error, time limit, Python missing).
    Problem(String),
}

#[component]
pub fn Exercise(exercise: &'static ExerciseBlock) -> impl IntoView {
    let progress = use_progress();
    let passed = move || progress.0.with(|p| p.passed(exercise.id, exercise.hash));
    let feedback = RwSignal::new(Feedback::Idle);
    // Record a pass as soon as a verdict says so.
    Effect::new(move |_| {
        if let Feedback::Verdict(v) = feedback.get()
            && v.passed
        {
            progress.record_pass(exercise.id, exercise.hash);
        }
    });
    let kind = grade::find(exercise.id).map(|g| g.kind());
    let body = match kind {
        Some(Kind::Python { function }) => {
            view! { <PythonExercise exercise=exercise function=function feedback=feedback /> }
                .into_any()
        }
        Some(Kind::Numeric) => {
            view! { <NumericExercise exercise=exercise feedback=feedback /> }.into_any()
        }
        Some(Kind::Choice { options }) => {
            view! { <ChoiceExercise exercise=exercise options=options feedback=feedback /> }
                .into_any()
        }
        None => view! { <p class="problem">"This exercise has no grader."</p> }.into_any(),
    };
    view! {
        <section
            class="exercise"
            class:passed=passed
            data-testid=format!("exercise-{}", exercise.id)
            id=format!("exercise-{}", exercise.id)
        >
            <header>
                <span class="exercise-label">"Exercise"</span>
                <h3>{exercise.title}</h3>
                <span class="exercise-state">{move || if passed() { "✓ passed" } else { "" }}</span>
            </header>
            <div class="prose" inner_html=exercise.prompt_html></div>
            {body}
            <FeedbackView feedback=feedback />
        </section>
    }
}

/// Grades the answer to a single-case exercise (numeric, choice).
fn grade_single(id: &str, answer: serde_json::Value) -> Feedback {
    match grade::grade(id, &[Outcome::Returned(answer)]) {
        Ok(v) => Feedback::Verdict(v),
        Err(e) => Feedback::Problem(e.to_string()),
    }
}

#[component]
fn NumericExercise(
    exercise: &'static ExerciseBlock,
    feedback: RwSignal<Feedback>,
) -> impl IntoView {
    let (answer, set_answer) = signal(String::new());
    let check = move || {
        let text = answer.get_untracked();
        match text.trim().parse::<f64>() {
            Ok(x) if x.is_finite() => feedback.set(grade_single(exercise.id, serde_json::json!(x))),
            _ => feedback.set(Feedback::Problem(format!(
                "'{}' is not a number; type digits like 3.14",
                text.trim()
            ))),
        }
    };
    view! {
        <form
            class="answer-row"
            on:submit=move |ev| {
                ev.prevent_default();
                check();
            }
        >
            <label>
                "Your answer "
                <input
                    type="text"
                    inputmode="decimal"
                    autocomplete="off"
                    data-testid="numeric-answer"
                    prop:value=answer
                    on:input=move |ev| set_answer.set(event_target_value(&ev))
                />
            </label>
            <button type="submit" data-testid="check">"Check"</button>
        </form>
    }
}

#[component]
fn ChoiceExercise(
    exercise: &'static ExerciseBlock,
    options: Vec<String>,
    feedback: RwSignal<Feedback>,
) -> impl IntoView {
    let choice = RwSignal::new(None::<usize>);
    let check = move |_| match choice.get_untracked() {
        Some(i) => feedback.set(grade_single(exercise.id, serde_json::json!(i))),
        None => feedback.set(Feedback::Problem("pick one of the options first".into())),
    };
    view! {
        <fieldset class="choices">
            <legend class="visually-hidden">{exercise.title}</legend>
            {options
                .into_iter()
                .enumerate()
                .map(|(i, text)| {
                    view! {
                        <label class="choice">
                            <input
                                type="radio"
                                name=format!("choice-{}", exercise.id)
                                data-testid=format!("choice-{i}")
                                on:change=move |_| choice.set(Some(i))
                            />
                            <span>{text}</span>
                        </label>
                    }
                })
                .collect_view()}
        </fieldset>
        <button on:click=check data-testid="check">"Check"</button>
    }
}

#[component]
fn FeedbackView(feedback: RwSignal<Feedback>) -> impl IntoView {
    view! {
        <div class="feedback" role="status" aria-live="polite" data-testid="feedback">
            {move || match feedback.get() {
                Feedback::Idle => ().into_any(),
                Feedback::Busy(what) => view! { <p class="busy">{what}</p> }.into_any(),
                Feedback::Problem(msg) => {
                    view! { <p class="verdict fail" data-testid="verdict-problem">{msg}</p> }.into_any()
                }
                Feedback::Verdict(v) if v.passed => {
                    view! {
                        <p class="verdict pass" data-testid="verdict-pass">
                            {if v.cases_total == 1 {
                                "✓ Correct.".to_string()
                            } else {
                                format!("✓ All {} hidden cases pass.", v.cases_total)
                            }}
                        </p>
                    }
                        .into_any()
                }
                Feedback::Verdict(v) => failure_view(&v).into_any(),
            }}
        </div>
    }
}

fn failure_view(v: &Verdict) -> impl IntoView + use<> {
    let f = v.failure.clone();
    let summary = if v.cases_total == 1 {
        "✗ Not quite.".to_string()
    } else {
        format!(
            "✗ {} of {} hidden cases pass.",
            v.cases_passed, v.cases_total
        )
    };
    view! {
        <div class="verdict fail" data-testid="verdict-fail">
            <p class="summary">{summary}</p>
            {f.map(|f| {
                let single = v.cases_total == 1;
                view! {
                    <p>
                        {(!single).then(|| view! { "Failing case: " <strong>{f.case.clone()}</strong> ". " })}
                        {f.reason.clone()}
                    </p>
                    <dl class="case">
                        {(!f.input.is_empty())
                            .then(|| view! { <dt>"input"</dt> <dd><code>{f.input.clone()}</code></dd> })}
                        <dt>"expected"</dt>
                        <dd><code>{f.expected.clone()}</code></dd>
                        <dt>"got"</dt>
                        <dd><code>{f.got.clone()}</code></dd>
                        {f.max_error
                            .map(|e| view! { <dt>"max error"</dt> <dd><code>{format!("{e:.3e}")}</code></dd> })}
                    </dl>
                    {f.hint.clone().map(|h| view! { <p class="hint" data-testid="hint"><strong>"Hint: "</strong>{h}</p> })}
                }
            })}
        </div>
    }
}
