//! Exercise of lesson C4, Encoder, decoder, encoder-decoder: build the attention mask each
//! architecture uses (BERT's encoder, GPT's or T5's decoder, T5's cross-attention), with
//! padding, checked against the masks the engine's models run with (`model::bert`,
//! `model::t5`).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use super::{Case, Grader, Kind, arg};
use crate::Result;
use crate::model::{bert, t5};

type Mask = Vec<Vec<bool>>;

/// `build_mask(kind, query_len, key_padding)`: `kind` is "encoder", "decoder" or "cross",
/// `key_padding[j]` is true when key `j` is padding; the answer is `query_len` rows of
/// `len(key_padding)` booleans, true where query `i` may attend to key `j`.
pub struct ArchitectureMasks;

/// The engine's mask for one case.
pub fn reference(kind: &str, query_len: usize, key_padding: &[bool]) -> Option<Mask> {
    match kind {
        // BERT's self-attention (T5's encoder uses the same).
        "encoder" => Some(bert::attention_mask(key_padding)),
        // GPT's self-attention, and T5's decoder's.
        "decoder" => Some(t5::decoder_mask(key_padding)),
        // T5's decoder queries over its encoder's keys.
        "cross" => Some(t5::cross_mask(query_len, key_padding)),
        _ => None,
    }
}

/// A mask from a rule `(i, j) -> allowed`.
fn mask_of(t_q: usize, t_k: usize, allowed: impl Fn(usize, usize) -> bool) -> Mask {
    (0..t_q)
        .map(|i| (0..t_k).map(|j| allowed(i, j)).collect())
        .collect()
}

fn case(name: &str, kind: &str, query_len: usize, key_padding: Vec<bool>) -> Case {
    Case {
        name: format!(
            "{name} ({kind}, {query_len} queries, {} keys of which {} padding)",
            key_padding.len(),
            key_padding.iter().filter(|&&p| p).count()
        ),
        args: vec![json!(kind), json!(query_len), json!(key_padding)],
    }
}

/// `len` keys whose last `pad` are padding.
fn padded(len: usize, pad: usize) -> Vec<bool> {
    (0..len).map(|j| j >= len - pad).collect()
}

impl Grader for ArchitectureMasks {
    fn id(&self) -> &'static str {
        "architecture-masks"
    }

    fn kind(&self) -> Kind {
        Kind::Python {
            function: "build_mask".into(),
        }
    }

    fn cases(&self) -> Vec<Case> {
        let mut rng = ChaCha8Rng::seed_from_u64(0xc4_3a5c);
        let mut cases = vec![
            case("worked example", "decoder", 3, vec![false; 3]),
            case("BERT on a sentence", "encoder", 5, vec![false; 5]),
            case("GPT on a sentence", "decoder", 6, vec![false; 6]),
            case("T5 reading its source", "cross", 3, vec![false; 5]),
        ];
        // Padded batch rows, of random sizes: the same three kinds.
        for kind in ["encoder", "decoder", "cross"] {
            let len = rng.random_range(5..=8);
            let pad = rng.random_range(1..=3);
            let query_len = if kind == "cross" {
                rng.random_range(2..=4)
            } else {
                len
            };
            cases.push(case("a padded row", kind, query_len, padded(len, pad)));
        }
        // One decoder query against a source of one real token.
        cases.push(case("one query, short source", "cross", 1, padded(4, 3)));
        cases
    }

    fn expected(&self, case: &Case) -> Result<Value> {
        let (kind, query_len, key_padding): (String, usize, Vec<bool>) =
            (arg(case, 0)?, arg(case, 1)?, arg(case, 2)?);
        let mask = reference(&kind, query_len, &key_padding).ok_or_else(|| {
            crate::Error::config("kind", format!("unknown architecture kind '{kind}'"))
        })?;
        Ok(json!(mask))
    }

    fn hint(&self, case: &Case, got: &Value) -> Option<String> {
        let kind: String = arg(case, 0).ok()?;
        let t_q: usize = arg(case, 1).ok()?;
        let pad: Vec<bool> = arg(case, 2).ok()?;
        let got: Mask = serde_json::from_value(got.clone()).ok()?;
        let t_k = pad.len();
        let real = |j: usize| !pad[j];
        let causal = |i: usize, j: usize| j <= i;
        let mistakes: Vec<(Mask, &str)> = vec![
            (
                mask_of(t_q, t_k, |i, j| causal(i, j) && real(j)),
                match kind.as_str() {
                    "encoder" => {
                        "an encoder (BERT) is bidirectional: every query may attend to every real key, before and after it; only padding is hidden"
                    }
                    _ => {
                        "cross-attention is not causal: the whole source is known before decoding starts, so every decoder position may attend to every real encoder position"
                    }
                },
            ),
            (
                mask_of(t_q, t_k, |_, j| real(j)),
                "a decoder (GPT, T5's decoder) is causal: query i may attend only to keys j <= i, or it would see the token it must predict",
            ),
            (
                mask_of(t_q, t_k, |i, j| j < i && real(j)),
                "a position may attend to itself: the causal rule is j <= i, not j < i (row 0 would have no key at all)",
            ),
            (
                mask_of(t_q, t_k, |i, j| j >= i && real(j)),
                "the mask is transposed: row i is the query, column j the key, and a decoder query looks back (j <= i)",
            ),
            (
                mask_of(t_q, t_k, |i, j| match kind.as_str() {
                    "decoder" => causal(i, j),
                    _ => true,
                }),
                "padding keys must be False in every row: key_padding[j] True means column j is padding and no query may attend to it",
            ),
            (
                mask_of(t_q, t_k, |i, j| match kind.as_str() {
                    "decoder" => causal(i, j) && i < t_k && real(i),
                    _ => i < t_k && real(i),
                }),
                "padding hides keys (columns), not queries (rows): use key_padding[j], the key's flag, for entry [i][j]",
            ),
        ];
        mistakes
            .into_iter()
            .find(|(mask, _)| *mask == got)
            .map(|(_, hint)| hint.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grade::{Outcome, grade};

    fn outcomes(answer: impl Fn(&str, usize, &[bool]) -> Mask) -> Vec<Outcome> {
        ArchitectureMasks
            .cases()
            .iter()
            .map(|c| {
                let (kind, t_q, pad): (String, usize, Vec<bool>) =
                    (arg(c, 0).unwrap(), arg(c, 1).unwrap(), arg(c, 2).unwrap());
                Outcome::Returned(json!(answer(&kind, t_q, &pad)))
            })
            .collect()
    }

    /// The answer as a student writes it, one rule per architecture.
    fn student(kind: &str, t_q: usize, pad: &[bool]) -> Mask {
        mask_of(t_q, pad.len(), |i, j| match kind {
            "decoder" => j <= i && !pad[j],
            _ => !pad[j],
        })
    }

    #[test]
    fn a_plain_answer_passes_every_case() {
        let verdict = grade("architecture-masks", &outcomes(student)).unwrap();
        assert!(verdict.passed, "{verdict:?}");
        assert_eq!(verdict.cases_total, 8);
    }

    #[test]
    fn worked_example_by_hand() {
        let case = &ArchitectureMasks.cases()[0];
        let (t, f) = (true, false);
        assert_eq!(
            ArchitectureMasks.expected(case).unwrap(),
            json!([[t, f, f], [t, t, f], [t, t, t]])
        );
        assert_eq!(
            reference("cross", 2, &[false, false, true]).unwrap(),
            vec![vec![t, t, f], vec![t, t, f]]
        );
    }

    fn hint_of(answer: impl Fn(&str, usize, &[bool]) -> Mask) -> String {
        let verdict = grade("architecture-masks", &outcomes(answer)).unwrap();
        assert!(!verdict.passed);
        verdict.failure.unwrap().hint.unwrap_or_default()
    }

    #[test]
    fn classic_mistakes_get_their_hints() {
        // Everything causal: fails first on BERT (case 1).
        let causal = hint_of(|_, t_q, pad| mask_of(t_q, pad.len(), |i, j| j <= i && !pad[j]));
        assert!(causal.contains("bidirectional"), "{causal}");
        // Nothing causal: fails on the worked example.
        let full = hint_of(|_, t_q, pad| mask_of(t_q, pad.len(), |_, j| !pad[j]));
        assert!(full.contains("is causal"), "{full}");
        let strict = hint_of(|kind, t_q, pad| {
            mask_of(t_q, pad.len(), |i, j| match kind {
                "decoder" => j < i,
                _ => !pad[j],
            })
        });
        assert!(strict.contains("attend to itself"), "{strict}");
        // Right rules, padding ignored: fails on the first padded row.
        let no_pad =
            hint_of(|kind, t_q, pad| mask_of(t_q, pad.len(), |i, j| kind != "decoder" || j <= i));
        assert!(no_pad.contains("padding keys"), "{no_pad}");
        // Encoder and cross correct, causal cross-attention.
        let causal_cross = hint_of(|kind, t_q, pad| {
            mask_of(t_q, pad.len(), |i, j| match kind {
                "encoder" => !pad[j],
                _ => j <= i && !pad[j],
            })
        });
        assert!(
            causal_cross.contains("cross-attention is not causal"),
            "{causal_cross}"
        );
    }

    #[test]
    fn cases_cover_every_kind_with_and_without_padding() {
        let cases = ArchitectureMasks.cases();
        for kind in ["encoder", "decoder", "cross"] {
            for padded in [false, true] {
                assert!(
                    cases.iter().any(|c| {
                        let k: String = arg(c, 0).unwrap();
                        let pad: Vec<bool> = arg(c, 2).unwrap();
                        k == kind && pad.iter().any(|&p| p) == padded
                    }),
                    "{kind} padded={padded}"
                );
            }
        }
    }
}
