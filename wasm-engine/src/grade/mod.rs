//! Reference solutions and checkers for the course's graded exercises.
//!
//! Every exercise, whether the student writes a Python function, types a number or picks an
//! option, goes through one interface: the grader makes seeded hidden [`Case`]s, the site runs
//! the student's answer on each case and hands back one [`Outcome`] per case, and [`grade`]
//! compares them with the reference, returning a [`Verdict`] that names the first failing
//! case, expected vs got, the max error, and a hint when the answer matches a classic mistake.
//!
//! The engine never runs Python: the site runs student code in Pyodide and passes the results
//! here as JSON values, so the same grader runs in the browser and in native tests.

mod b2;
mod c1;
mod c2;
mod c3;
mod c4;
mod d1;
mod d3;
mod e1;
mod e2;
mod e3;
mod e4;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Error, Result};

/// How the student answers an exercise.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Kind {
    /// A Python function, called once per hidden case with the case's arguments.
    Python {
        /// The name the student's code must define.
        function: String,
    },
    /// One number, compared with a relative tolerance.
    Numeric,
    /// One of several options, answered by its index.
    Choice { options: Vec<String> },
}

/// One hidden input: positional arguments for the student's function (empty for numeric and
/// multiple-choice questions, which have a single case).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Case {
    pub name: String,
    pub args: Vec<Value>,
}

/// What the student's answer produced on one case.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", content = "value", rename_all = "snake_case")]
pub enum Outcome {
    /// The function returned (as JSON: tuples become lists), or the typed answer.
    Returned(Value),
    /// The function raised; the message is the last line of the traceback.
    Raised(String),
}

/// The first failing case, explained.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    pub case: String,
    /// The case's arguments, shortened for display.
    pub input: String,
    pub expected: String,
    pub got: String,
    /// Largest absolute difference over the numbers compared, when shapes matched.
    pub max_error: Option<f64>,
    /// What went wrong, in one sentence (shape mismatch, exception, wrong value).
    pub reason: String,
    /// Advice when the answer matches a classic mistake.
    pub hint: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub passed: bool,
    pub cases_passed: usize,
    pub cases_total: usize,
    pub failure: Option<Failure>,
}

/// The checker of one exercise. Implementations live next to their lesson (`d1.rs`, `b2.rs`).
pub trait Grader: Sync {
    fn id(&self) -> &'static str;
    fn kind(&self) -> Kind;
    /// The hidden cases, deterministic (seeded) so that a verdict can be reproduced.
    fn cases(&self) -> Vec<Case>;
    /// The reference answer for one case.
    fn expected(&self, case: &Case) -> Result<Value>;
    /// Compare settings; exercises with floats use a tolerance, the rest compare exactly.
    fn tolerance(&self) -> Tolerance {
        Tolerance::default()
    }
    /// A hint for a wrong answer that matches a classic mistake, if it does.
    fn hint(&self, _case: &Case, _got: &Value) -> Option<String> {
        None
    }
}

/// Numbers `a` (got) and `b` (expected) match when `|a - b| <= abs + rel * |b|`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    pub abs: f64,
    pub rel: f64,
}

impl Default for Tolerance {
    fn default() -> Self {
        // Students compute in Python floats (f64); 1e-6 forgives a different summation order.
        Self {
            abs: 1e-6,
            rel: 1e-6,
        }
    }
}

/// Every exercise the course grades: the one list of exercise ids and their kinds (the site's
/// build script asks [`find`] about each exercise a lesson names).
static GRADERS: &[&dyn Grader] = &[
    &d1::BigramNll,
    &d1::AttentionHead,
    &d1::UniformLoss,
    &b2::BpeMergeStep,
    &b2::BpeEncode,
    &b2::ByteLevel,
    &e1::TopP,
    &e2::KvStep,
    &e3::Int8Roundtrip,
    &e4::Roofline,
    &c1::MaskedAttention,
    &c2::Rope,
    &c3::LayerNormForward,
    &c4::ArchitectureMasks,
    &d3::JobEstimate,
];

/// The grader of an exercise id, e.g. `find("bigram-nll")`.
pub fn find(id: &str) -> Option<&'static dyn Grader> {
    GRADERS.iter().copied().find(|g| g.id() == id)
}

/// The grader of an exercise id, or an error that lists the ids there are.
pub fn lookup(id: &str) -> Result<&'static dyn Grader> {
    find(id).ok_or_else(|| {
        let known: Vec<&str> = GRADERS.iter().map(|g| g.id()).collect();
        Error::config(
            "exercise",
            format!(
                "unknown exercise '{id}'; expected one of {}",
                known.join(", ")
            ),
        )
    })
}

/// The hidden cases of an exercise, to run the student's code on.
pub fn cases(id: &str) -> Result<Vec<Case>> {
    Ok(lookup(id)?.cases())
}

/// Grades one submission: `outcomes[i]` is what the answer produced on `cases(id)[i]`.
pub fn grade(id: &str, outcomes: &[Outcome]) -> Result<Verdict> {
    let grader = lookup(id)?;
    let cases = grader.cases();
    if outcomes.len() != cases.len() {
        return Err(Error::config(
            "outcomes",
            format!(
                "got {} outcomes for {} cases; run the answer on every case",
                outcomes.len(),
                cases.len()
            ),
        ));
    }
    let tol = grader.tolerance();
    let mut cases_passed = 0;
    let mut failure = None;
    for (case, outcome) in cases.iter().zip(outcomes) {
        let expected = grader.expected(case)?;
        let result = match outcome {
            Outcome::Raised(message) => Err(Failure {
                case: case.name.clone(),
                input: show_args(&case.args),
                expected: show(&expected),
                got: "an exception".into(),
                max_error: None,
                reason: format!("your code raised {message}"),
                hint: None,
            }),
            Outcome::Returned(got) => {
                let (reason, max_error) = match compare(got, &expected, tol) {
                    Comparison::Equal { .. } => (None, None),
                    Comparison::Shape(reason) => (Some(reason), None),
                    Comparison::Value { reason, max_error } => (Some(reason), max_error),
                };
                match reason {
                    None => Ok(()),
                    Some(reason) => Err(Failure {
                        case: case.name.clone(),
                        input: show_args(&case.args),
                        expected: show(&expected),
                        got: show(got),
                        max_error,
                        reason,
                        hint: grader.hint(case, got),
                    }),
                }
            }
        };
        match result {
            Ok(()) => cases_passed += 1,
            Err(f) => {
                if failure.is_none() {
                    failure = Some(f);
                }
            }
        }
    }
    Ok(Verdict {
        passed: failure.is_none(),
        cases_passed,
        cases_total: cases.len(),
        failure,
    })
}

/// Result of comparing a student's value with the reference.
#[derive(Debug, PartialEq)]
pub(crate) enum Comparison {
    Equal {
        max_error: Option<f64>,
    },
    /// Types or lengths differ: the numbers cannot be compared one by one.
    Shape(String),
    Value {
        reason: String,
        max_error: Option<f64>,
    },
}

/// Compares JSON values: numbers with `tol`, lists element by element (same length), other
/// values exactly. Reports the largest absolute error over all numbers when shapes match.
pub(crate) fn compare(got: &Value, expected: &Value, tol: Tolerance) -> Comparison {
    let mut max_error: Option<f64> = None;
    let mut first_bad: Option<String> = None;
    if let Err(reason) = walk(got, expected, tol, "", &mut max_error, &mut first_bad) {
        return Comparison::Shape(reason);
    }
    match first_bad {
        None => Comparison::Equal { max_error },
        Some(reason) => Comparison::Value { reason, max_error },
    }
}

fn walk(
    got: &Value,
    expected: &Value,
    tol: Tolerance,
    path: &str,
    max_error: &mut Option<f64>,
    first_bad: &mut Option<String>,
) -> std::result::Result<(), String> {
    let at = if path.is_empty() {
        String::new()
    } else {
        format!(" at {path}")
    };
    match (got, expected) {
        (Value::Number(g), Value::Number(e)) => {
            let (g, e) = (
                g.as_f64().unwrap_or(f64::NAN),
                e.as_f64().unwrap_or(f64::NAN),
            );
            let err = (g - e).abs();
            *max_error = Some(max_error.map_or(err, |m: f64| m.max(err)));
            let ok = err <= tol.abs + tol.rel * e.abs();
            if !ok && first_bad.is_none() {
                *first_bad = Some(format!("wrong value{at}: expected {e}, got {g}"));
            }
            Ok(())
        }
        (Value::Array(g), Value::Array(e)) => {
            if g.len() != e.len() {
                return Err(format!(
                    "wrong length{at}: expected a list of {}, got {}",
                    e.len(),
                    g.len()
                ));
            }
            for (i, (g, e)) in g.iter().zip(e).enumerate() {
                walk(g, e, tol, &format!("{path}[{i}]"), max_error, first_bad)?;
            }
            Ok(())
        }
        (Value::Null, _) => Err(format!(
            "your function returned None{at}; did you forget a return statement?"
        )),
        (g, e) if std::mem::discriminant(g) != std::mem::discriminant(e) => Err(format!(
            "wrong type{at}: expected {}, got {}",
            type_name(e),
            type_name(g)
        )),
        (g, e) => {
            if g != e && first_bad.is_none() {
                *first_bad = Some(format!("wrong value{at}: expected {e}, got {g}"));
            }
            Ok(())
        }
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "None",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a dict",
    }
}

/// A value shortened for display: floats to 4 decimals, long lists elided.
pub fn show(v: &Value) -> String {
    let mut s = String::new();
    show_into(v, &mut s);
    s
}

fn show_args(args: &[Value]) -> String {
    args.iter().map(show).collect::<Vec<_>>().join(", ")
}

fn show_into(v: &Value, out: &mut String) {
    const MAX_ITEMS: usize = 8;
    match v {
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => out.push_str(&i.to_string()),
            (None, Some(f)) => out.push_str(&format!("{f:.4}")),
            _ => out.push_str(&n.to_string()),
        },
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i == MAX_ITEMS {
                    out.push_str(&format!(", … {} more", items.len() - MAX_ITEMS));
                    break;
                }
                if i > 0 {
                    out.push_str(", ");
                }
                show_into(item, out);
            }
            out.push(']');
        }
        Value::String(s) => out.push_str(&format!("{s:?}")),
        Value::Null => out.push_str("None"),
        Value::Bool(b) => out.push_str(if *b { "True" } else { "False" }),
        other => out.push_str(&other.to_string()),
    }
}

/// True when `got` equals `candidate` within `tol`: used by hints to recognise a mistake.
pub(crate) fn matches(got: &Value, candidate: &Value, tol: Tolerance) -> bool {
    matches!(compare(got, candidate, tol), Comparison::Equal { .. })
}

/// Reads argument `i` of a case as a `T`; the cases are ours, so a mismatch is a bug here.
pub(crate) fn arg<T: serde::de::DeserializeOwned>(case: &Case, i: usize) -> Result<T> {
    let v = case.args.get(i).cloned().unwrap_or(Value::Null);
    serde_json::from_value(v).map_err(Error::from)
}
