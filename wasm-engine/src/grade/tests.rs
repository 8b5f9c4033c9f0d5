use serde_json::{Value, json};

use super::*;

/// Runs the reference itself as the "student": every case must pass.
fn reference_outcomes(id: &str) -> Vec<Outcome> {
    let grader = find(id).unwrap();
    grader
        .cases()
        .iter()
        .map(|c| Outcome::Returned(grader.expected(c).unwrap()))
        .collect()
}

/// The outcomes of a wrong function that is applied to every case.
fn outcomes_of(id: &str, f: impl Fn(&Case) -> Value) -> Vec<Outcome> {
    find(id)
        .unwrap()
        .cases()
        .iter()
        .map(|c| Outcome::Returned(f(c)))
        .collect()
}

#[test]
fn every_registered_grader_is_consistent() {
    for (i, grader) in GRADERS.iter().enumerate() {
        let id = grader.id();
        assert!(
            GRADERS[..i].iter().all(|g| g.id() != id),
            "{id} is registered twice"
        );
        assert_eq!(lookup(id).unwrap().id(), id);
        assert!(!grader.cases().is_empty(), "{id} has no cases");
        match grader.kind() {
            Kind::Python { function } => assert!(!function.is_empty(), "{id}"),
            // One question, one answer.
            Kind::Numeric => assert_eq!(grader.cases().len(), 1, "{id}"),
            Kind::Choice { options } => {
                assert!(options.len() > 1, "{id}");
                assert_eq!(grader.cases().len(), 1, "{id}");
            }
        }
    }
}

#[test]
fn every_exercise_in_a_lesson_has_a_grader() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../lessons");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            let text = std::fs::read_to_string(&path).unwrap();
            for line in text.lines() {
                if let Some(id) = line.trim().strip_prefix("```exercise ") {
                    assert!(find(id.trim()).is_some(), "{}: {id}", path.display());
                }
            }
        }
    }
}

#[test]
fn the_reference_passes_every_case() {
    for id in GRADERS.iter().map(|g| g.id()) {
        let verdict = grade(id, &reference_outcomes(id)).unwrap();
        assert!(verdict.passed, "{id}: {verdict:?}");
        assert_eq!(verdict.cases_passed, verdict.cases_total);
    }
}

#[test]
fn cases_are_deterministic() {
    for id in GRADERS.iter().map(|g| g.id()) {
        assert_eq!(cases(id).unwrap(), cases(id).unwrap());
    }
}

#[test]
fn unknown_exercise_and_wrong_outcome_count_are_errors() {
    assert!(
        grade("nope", &[])
            .unwrap_err()
            .to_string()
            .contains("bigram-nll")
    );
    assert!(grade("bigram-nll", &[]).is_err());
}

#[test]
fn bigram_nll_worked_example() {
    // p(1|0) = 3/4, p(1|1) = 2/4, p(0|1) = 2/4; nll = -(ln .75 + 2 ln .5) / 3
    let case = &cases("bigram-nll").unwrap()[0];
    let got = find("bigram-nll").unwrap().expected(case).unwrap();
    let want = -((0.75f64).ln() + 2.0 * (0.5f64).ln()) / 3.0;
    assert!((got.as_f64().unwrap() - want).abs() < 1e-12);
    assert!((want - 0.557_993).abs() < 1e-6);
}

#[test]
fn bigram_nll_sum_instead_of_mean_gets_its_hint() {
    let outcomes = outcomes_of("bigram-nll", |c| {
        let ids: Vec<usize> = arg(c, 1).unwrap();
        let mean = find("bigram-nll")
            .unwrap()
            .expected(c)
            .unwrap()
            .as_f64()
            .unwrap();
        json!(mean * (ids.len() - 1) as f64)
    });
    let verdict = grade("bigram-nll", &outcomes).unwrap();
    assert!(!verdict.passed);
    let failure = verdict.failure.unwrap();
    assert_eq!(failure.case, "two tokens");
    assert!(failure.max_error.unwrap() > 1.0);
    assert!(failure.hint.unwrap().contains("sum"), "hint");
}

#[test]
fn an_exception_and_none_are_reported() {
    let n = cases("bigram-nll").unwrap().len();
    let verdict = grade(
        "bigram-nll",
        &vec![Outcome::Raised("ZeroDivisionError: division by zero".into()); n],
    )
    .unwrap();
    assert!(
        verdict
            .failure
            .unwrap()
            .reason
            .contains("ZeroDivisionError")
    );
    let verdict = grade("bigram-nll", &vec![Outcome::Returned(Value::Null); n]).unwrap();
    assert!(verdict.failure.unwrap().reason.contains("return"));
}

#[test]
fn attention_two_tokens_by_hand() {
    // q = k = v = I (2x2). Row 0 sees only itself -> v0 = [1, 0]. Row 1 scores (0, 1/sqrt 2):
    // softmax -> [1 / (1 + e^0.7071), e^0.7071 / (1 + e^0.7071)] = [0.33023, 0.66977].
    let eye = json!([[1.0, 0.0], [0.0, 1.0]]);
    let case = Case {
        name: "eye".into(),
        args: vec![eye.clone(), eye.clone(), eye],
    };
    let out = find("attention-head").unwrap().expected(&case).unwrap();
    let out: Vec<Vec<f64>> = serde_json::from_value(out).unwrap();
    assert_eq!(out[0], vec![1.0, 0.0]);
    assert!((out[1][0] - 0.330_23).abs() < 1e-5, "{out:?}");
    assert!((out[1][1] - 0.669_77).abs() < 1e-5, "{out:?}");
}

#[test]
fn attention_without_mask_gets_the_mask_hint() {
    let grader = find("attention-head").unwrap();
    let case = &grader.cases()[1];
    type Matrix = Vec<Vec<f64>>;
    let (q, k, v): (Matrix, Matrix, Matrix) = (
        arg(case, 0).unwrap(),
        arg(case, 1).unwrap(),
        arg(case, 2).unwrap(),
    );
    // Unmasked attention written out directly, as a student would.
    let d = q[0].len() as f64;
    let out: Vec<Vec<f64>> = q
        .iter()
        .map(|qi| {
            let s: Vec<f64> = k
                .iter()
                .map(|kj| qi.iter().zip(kj).map(|(a, b)| a * b).sum::<f64>() / d.sqrt())
                .collect();
            let m = s.iter().cloned().fold(f64::MIN, f64::max);
            let e: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
            let z: f64 = e.iter().sum();
            (0..v[0].len())
                .map(|c| e.iter().zip(&v).map(|(w, vj)| w / z * vj[c]).sum())
                .collect()
        })
        .collect();
    let hint = grader.hint(case, &json!(out)).unwrap();
    assert!(hint.contains("-inf"), "{hint}");
}

#[test]
fn merge_step_on_aaabdaaabac() {
    let case = &cases("bpe-merge-step").unwrap()[0];
    let got = find("bpe-merge-step").unwrap().expected(case).unwrap();
    assert_eq!(got, json!([[1, 1], [256, 1, 2, 4, 256, 1, 2, 1, 3]]));
    let tie = &cases("bpe-merge-step").unwrap()[1];
    let got = find("bpe-merge-step").unwrap().expected(tie).unwrap();
    assert_eq!(got, json!([[5, 3], [6, 3, 5]]));
}

#[test]
fn merge_step_replacing_only_the_first_gets_its_hint() {
    let grader = find("bpe-merge-step").unwrap();
    let case = &grader.cases()[0];
    let hint = grader
        .hint(case, &json!([[1, 1], [256, 1, 2, 4, 1, 1, 1, 2, 1, 3]]))
        .unwrap();
    assert!(hint.contains("every"), "{hint}");
}

#[test]
fn encode_by_hand_and_the_code_point_mistake() {
    let grader = find("bpe-encode").unwrap();
    let case = Case {
        name: "aaab".into(),
        args: vec![json!("aaab"), json!([[[97, 97], 256], [[256, 97], 257]])],
    };
    assert_eq!(grader.expected(&case).unwrap(), json!([257, 98]));
    let accents = grader
        .cases()
        .into_iter()
        .find(|c| c.name.starts_with("accents"))
        .unwrap();
    let text: String = arg(&accents, 0).unwrap();
    let by_code_point: Vec<u32> = text.chars().map(|c| c as u32).collect();
    // With merges applied on top of code points the result still differs from bytes; the
    // hint must recognise the variant that applies the merges too.
    let merges: Vec<(Pair, u32)> = arg(&accents, 1).unwrap();
    let mut ids = by_code_point;
    for (pair, id) in merges {
        let mut out = Vec::new();
        let mut i = 0;
        while i < ids.len() {
            if i + 1 < ids.len() && (ids[i], ids[i + 1]) == pair {
                out.push(id);
                i += 2;
            } else {
                out.push(ids[i]);
                i += 1;
            }
        }
        ids = out;
    }
    let hint = grader.hint(&accents, &json!(ids)).unwrap();
    assert!(hint.contains("utf-8"), "{hint}");
}

type Pair = (u32, u32);

#[test]
fn numeric_and_choice_use_the_same_interface() {
    let ok = grade("uniform-loss", &[Outcome::Returned(json!(4.174))]).unwrap();
    assert!(ok.passed);
    let log10 = grade("uniform-loss", &[Outcome::Returned(json!(1.8129))]).unwrap();
    assert!(log10.failure.unwrap().hint.unwrap().contains("natural"));
    assert!(
        grade("byte-level", &[Outcome::Returned(json!(1))])
            .unwrap()
            .passed
    );
    let wrong = grade("byte-level", &[Outcome::Returned(json!(3))]).unwrap();
    assert!(
        wrong
            .failure
            .unwrap()
            .hint
            .unwrap()
            .contains("1 to 4 bytes")
    );
}
