//! The site's lesson compiler (`frontend/build/lessons.rs`, run by the frontend's build
//! script), compiled natively: each mistake a lesson can make stops the build with the
//! lesson's file and the line to fix, and every real lesson compiles.

#[allow(dead_code)]
#[path = "../../frontend/build/lessons.rs"]
mod lessons;

use std::path::Path;

const FILE: &str = "lessons/x1-test.md";

/// A lesson whose body is `body`.
fn lesson(body: &str) -> String {
    format!(
        "+++\nid = \"X1\"\nslug = \"test\"\ntitle = \"Test\"\nsummary = \"A test.\"\nminutes = 1\n+++\n\nSome prose.\n\n{body}"
    )
}

/// The build error of a lesson with this body.
fn error(body: &str) -> String {
    match lessons::compile_lesson(Path::new(FILE), &lesson(body)) {
        Ok(_) => panic!("the lesson compiled:\n{body}"),
        Err(e) => e.to_string(),
    }
}

/// The 1-based line of the lesson where `needle` first appears.
fn line_of(body: &str, needle: &str) -> usize {
    let text = lesson(body);
    let at = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle} not in the lesson"));
    text[..at].matches('\n').count() + 1
}

fn assert_error_at(body: &str, needle: &str, expected: &[&str]) {
    let err = error(body);
    let prefix = format!("{FILE}:{}: ", line_of(body, needle));
    assert!(err.starts_with(&prefix), "want {prefix}…, got: {err}");
    for part in expected {
        assert!(err.contains(part), "want '{part}' in: {err}");
    }
}

const MODEL: &str = "[model]\nn_layer = 2\nn_head = 4\nn_embd = 64\nblock_size = 64\n";

#[test]
fn a_lesson_with_good_widgets_compiles() {
    let body = format!(
        "```widget train-gpt\nsample_interval = 10\n\n{MODEL}\n[train]\nmax_steps = 5\n```\n\n```widget bigram-counts\n```\n"
    );
    lessons::compile_lesson(Path::new(FILE), &lesson(&body)).unwrap();
}

#[test]
fn unknown_widget_names_the_fence_line_and_the_widgets() {
    let body = "```widget train-gtp\nmax_steps = 5\n```\n";
    assert_error_at(
        body,
        "```widget train-gtp",
        &["unknown widget 'train-gtp'", "train-gpt", "block-compare"],
    );
}

#[test]
fn unknown_key_of_a_widget_names_its_line() {
    let body = "```widget bigram-counts\ntext = \"abc\"\ncolour = \"red\"\n```\n";
    assert_error_at(body, "colour", &["colour", "text"]);
}

#[test]
fn unknown_key_in_the_model_table_names_its_line() {
    // gpt::Config lets unknown keys pass; the build must not.
    let body = format!("```widget train-gpt\n{MODEL}n_layr = 3\n```\n");
    assert_error_at(&body, "n_layr", &["'model.n_layr'"]);
}

#[test]
fn unknown_key_in_the_train_table_names_its_line() {
    let body = format!(
        "```widget block-compare\n{MODEL}\n[train]\nmax_steps = 10\nlearning_rat = 1e-3\n```\n"
    );
    assert_error_at(&body, "learning_rat", &["'train.learning_rat'"]);
}

#[test]
fn unknown_key_in_an_inline_table_names_its_line() {
    let body = "```widget block-compare\na = { norm = \"layernorm\", ffn = \"gelu\", norm_placement = \"pre\", residual = true, dropout = 0.1 }\n```\n";
    assert_error_at(body, "a = {", &["dropout"]);
}

#[test]
fn wrongly_typed_value_names_its_line() {
    let body = format!(
        "```widget train-gpt\n{MODEL}\n[train]\nbatch_size = 8\nmax_steps = \"600\"\n```\n"
    );
    assert_error_at(&body, "max_steps", &["invalid type", "string"]);
}

#[test]
fn wrongly_typed_top_level_value_names_its_line() {
    // Before the typed schema this fell back to the widget's defaults without a word.
    let body = "```widget kv-cache-bench\nn_tokens = -5\n```\n";
    assert_error_at(body, "n_tokens", &["n_tokens"]);
}

#[test]
fn unknown_enum_value_in_the_model_names_its_line() {
    let body = format!("```widget train-gpt\n{MODEL}norm = \"batchnorm\"\n```\n");
    assert_error_at(&body, "norm =", &["batchnorm", "layernorm"]);
}

#[test]
fn unknown_exercise_names_the_fence_line_and_the_exercises() {
    let body = "```exercise bigram-nl\ntitle = \"Bigram loss\"\n```\n";
    assert_error_at(
        body,
        "```exercise bigram-nl",
        &["unknown exercise 'bigram-nl'", "bigram-nll"],
    );
}

#[test]
fn a_python_exercise_without_starter_code_is_an_error() {
    let body = "```exercise bigram-nll\ntitle = \"Bigram loss\"\n```\n";
    assert_error_at(body, "```exercise bigram-nll", &["starter"]);
}

#[test]
fn every_lesson_compiles() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../lessons");
    if let Err(e) = lessons::compile_all(&dir) {
        panic!("{e}");
    }
}
