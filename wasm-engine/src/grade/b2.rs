//! Exercises of lesson B2, Tokenization: one BPE merge step, encoding with a merge list, and
//! why byte-level BPE starts from bytes.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};

use super::{Case, Grader, Kind, arg, matches};
use crate::Result;

type Pair = (u32, u32);

/// How the student's merge step may go wrong.
#[derive(Clone, Copy, Default)]
struct MergeVariant {
    /// Among equally frequent pairs, take the smallest `(a, b)` instead of the first seen.
    tie_smallest: bool,
    /// Among equally frequent pairs, take the last seen.
    tie_last: bool,
    /// Replace only the first occurrence of the pair.
    first_only: bool,
    /// Scan from the right, which merges `a a a` as `a (aa)` instead of `(aa) a`.
    right_to_left: bool,
}

/// Pair counts in order of first occurrence, overlapping (`a a a` has `(a, a)` twice), as
/// minbpe's `get_stats` counts them.
fn pair_counts(ids: &[u32]) -> Vec<(Pair, usize)> {
    let mut counts: Vec<(Pair, usize)> = Vec::new();
    for w in ids.windows(2) {
        let pair = (w[0], w[1]);
        match counts.iter_mut().find(|(p, _)| *p == pair) {
            Some((_, n)) => *n += 1,
            None => counts.push((pair, 1)),
        }
    }
    counts
}

/// Replaces each occurrence of `pair`, left to right and without overlap, by `new_id`.
fn merge(ids: &[u32], pair: Pair, new_id: u32, v: MergeVariant) -> Vec<u32> {
    let mut src: Vec<u32> = ids.to_vec();
    if v.right_to_left {
        src.reverse();
    }
    let want = if v.right_to_left {
        (pair.1, pair.0)
    } else {
        pair
    };
    let mut out = Vec::with_capacity(src.len());
    let mut merged_once = false;
    let mut i = 0;
    while i < src.len() {
        let can_merge = !(v.first_only && merged_once);
        if can_merge && i + 1 < src.len() && (src[i], src[i + 1]) == want {
            out.push(new_id);
            merged_once = true;
            i += 2;
        } else {
            out.push(src[i]);
            i += 1;
        }
    }
    if v.right_to_left {
        out.reverse();
    }
    out
}

fn merge_step(ids: &[u32], new_id: u32, v: MergeVariant) -> Option<(Pair, Vec<u32>)> {
    let counts = pair_counts(ids);
    let best = counts.iter().map(|(_, n)| *n).max()?;
    let mut tied = counts.iter().filter(|(_, n)| *n == best).map(|(p, _)| *p);
    let pair = if v.tie_smallest {
        tied.min()?
    } else if v.tie_last {
        tied.next_back()?
    } else {
        counts.iter().find(|(_, n)| *n == best)?.0
    };
    Some((pair, merge(ids, pair, new_id, v)))
}

/// `merge_step(ids, new_id)`: the most frequent adjacent pair (ties: first seen) and the ids
/// with every occurrence of it replaced by `new_id`, returned as `(pair, new_ids)`.
pub struct BpeMergeStep;

impl Grader for BpeMergeStep {
    fn id(&self) -> &'static str {
        "bpe-merge-step"
    }

    fn kind(&self) -> Kind {
        Kind::Python {
            function: "merge_step".into(),
        }
    }

    fn cases(&self) -> Vec<Case> {
        let mut cases = vec![
            Case {
                // "aaabdaaabac" with a=1, b=2, c=3, d=4: (a, a) occurs four times, overlapping.
                name: "aaabdaaabac".into(),
                args: vec![json!([1, 1, 1, 2, 4, 1, 1, 1, 2, 1, 3]), json!(256)],
            },
            Case {
                name: "three pairs tied at one".into(),
                args: vec![json!([5, 3, 3, 5]), json!(6)],
            },
            Case {
                name: "the pair occurs at both ends".into(),
                args: vec![json!([7, 8, 1, 2, 3, 7, 8]), json!(9)],
            },
        ];
        let mut rng = ChaCha8Rng::seed_from_u64(0xb2_01);
        for i in 0..5 {
            let len = rng.random_range(6..=30);
            let alphabet = rng.random_range(2..=5);
            let ids: Vec<u32> = (0..len).map(|_| rng.random_range(0..alphabet)).collect();
            cases.push(Case {
                name: format!("random #{} ({len} ids)", i + 1),
                args: vec![json!(ids), json!(256 + i)],
            });
        }
        cases
    }

    fn expected(&self, case: &Case) -> Result<Value> {
        let ids: Vec<u32> = arg(case, 0)?;
        let new_id: u32 = arg(case, 1)?;
        Ok(match merge_step(&ids, new_id, MergeVariant::default()) {
            Some(((a, b), out)) => json!([[a, b], out]),
            None => Value::Null,
        })
    }

    fn hint(&self, case: &Case, got: &Value) -> Option<String> {
        let ids: Vec<u32> = arg(case, 0).ok()?;
        let new_id: u32 = arg(case, 1).ok()?;
        let base = MergeVariant::default();
        let mistakes = [
            (
                MergeVariant {
                    first_only: true,
                    ..base
                },
                "replace *every* occurrence of the pair, not just the first",
            ),
            (
                MergeVariant {
                    right_to_left: true,
                    ..base
                },
                "scan left to right: in a a a the pair (a, a) merges as (aa) a, and after a merge skip both ids (i += 2)",
            ),
            (
                MergeVariant {
                    tie_smallest: true,
                    ..base
                },
                "break ties by first occurrence, not by the smallest pair: build the counts in order (a dict keeps insertion order) and take max(counts, key=counts.get)",
            ),
            (
                MergeVariant {
                    tie_last: true,
                    ..base
                },
                "break ties by *first* occurrence: max(counts, key=counts.get) returns the first of equal counts",
            ),
        ];
        let tol = self.tolerance();
        mistakes
            .iter()
            .find_map(|(v, hint)| {
                let ((a, b), out) = merge_step(&ids, new_id, *v)?;
                matches(got, &json!([[a, b], out]), tol).then(|| hint.to_string())
            })
            .or_else(|| {
                // Overlapping pairs counted once per position is the other classic slip.
                let got_pair = got.get(0)?;
                let pairs = pair_counts(&ids);
                let non_overlap_best = pairs
                    .iter()
                    .map(|(p, _)| {
                        (
                            *p,
                            merge(&ids, *p, u32::MAX, base)
                                .iter()
                                .filter(|&&x| x == u32::MAX)
                                .count(),
                        )
                    })
                    .max_by_key(|(_, n)| *n)?;
                (got_pair == &json!([non_overlap_best.0.0, non_overlap_best.0.1])).then(|| {
                    "count pairs at every position, overlapping: a a a contains (a, a) twice"
                        .to_string()
                })
            })
    }
}

/// How the student's encoder may go wrong.
#[derive(Clone, Copy, Default)]
struct EncodeVariant {
    /// Start from code points (`ord(c)`) instead of UTF-8 bytes.
    code_points: bool,
    /// Apply the merges newest first.
    reversed: bool,
    /// Replace only the first occurrence of each pair.
    first_only: bool,
}

fn encode(text: &str, merges: &[(Pair, u32)], v: EncodeVariant) -> Vec<u32> {
    let mut ids: Vec<u32> = if v.code_points {
        text.chars().map(|c| c as u32).collect()
    } else {
        text.bytes().map(u32::from).collect()
    };
    let order: Vec<&(Pair, u32)> = if v.reversed {
        merges.iter().rev().collect()
    } else {
        merges.iter().collect()
    };
    // Applying the merges in the order they were learned, each over the whole sequence, gives
    // the same result as minbpe's "merge the lowest-ranked pair present" loop: a pair made
    // by merge r contains r's new id, so it can only match a later merge.
    let mv = MergeVariant {
        first_only: v.first_only,
        ..MergeVariant::default()
    };
    for (pair, new_id) in order {
        ids = merge(&ids, *pair, *new_id, mv);
    }
    ids
}

/// Learns `n` merges from `text` with the reference merge step.
fn learn_merges(text: &str, n: u32) -> Vec<(Pair, u32)> {
    let mut ids: Vec<u32> = text.bytes().map(u32::from).collect();
    let mut merges = Vec::new();
    for i in 0..n {
        let Some((pair, out)) = merge_step(&ids, 256 + i, MergeVariant::default()) else {
            break;
        };
        merges.push((pair, 256 + i));
        ids = out;
    }
    merges
}

/// `encode(text, merges)`: UTF-8 bytes of `text`, then the merges `[[a, b], new_id]` applied
/// in the order they were learned.
pub struct BpeEncode;

const ENCODE_CORPUS: &str = "the theme of the thesis: the theory that there is the thing. \
    déjà vu, café, naïve — the thé is très chaud.";

impl Grader for BpeEncode {
    fn id(&self) -> &'static str {
        "bpe-encode"
    }

    fn kind(&self) -> Kind {
        Kind::Python {
            function: "encode".into(),
        }
    }

    fn cases(&self) -> Vec<Case> {
        let merges: Vec<Value> = learn_merges(ENCODE_CORPUS, 12)
            .into_iter()
            .map(|((a, b), id)| json!([[a, b], id]))
            .collect();
        let texts = [
            ("plain ASCII", "the theory of the thesis"),
            ("no merges apply", "xyz"),
            ("empty text", ""),
            ("accents (two bytes each)", "thé au café"),
            ("repeats", "thethethe the"),
        ];
        texts
            .iter()
            .map(|(name, text)| Case {
                name: (*name).into(),
                args: vec![json!(text), json!(merges)],
            })
            .collect()
    }

    fn expected(&self, case: &Case) -> Result<Value> {
        let text: String = arg(case, 0)?;
        let merges: Vec<(Pair, u32)> = arg(case, 1)?;
        Ok(json!(encode(&text, &merges, EncodeVariant::default())))
    }

    fn hint(&self, case: &Case, got: &Value) -> Option<String> {
        let text: String = arg(case, 0).ok()?;
        let merges: Vec<(Pair, u32)> = arg(case, 1).ok()?;
        let base = EncodeVariant::default();
        let mistakes = [
            (
                EncodeVariant {
                    code_points: true,
                    ..base
                },
                "start from the UTF-8 bytes, list(text.encode('utf-8')), not ord(c): é is two bytes",
            ),
            (
                EncodeVariant {
                    reversed: true,
                    ..base
                },
                "apply the merges in the order they were learned: a later merge can use an id that an earlier merge creates",
            ),
            (
                EncodeVariant {
                    first_only: true,
                    ..base
                },
                "each merge replaces *every* occurrence of its pair",
            ),
        ];
        let tol = self.tolerance();
        mistakes
            .iter()
            .find(|(v, _)| matches(got, &json!(encode(&text, &merges, *v)), tol))
            .map(|(_, hint)| hint.to_string())
    }
}

/// Multiple choice: why byte-level BPE starts from the 256 byte values.
pub struct ByteLevel;

const BYTE_LEVEL_OPTIONS: [&str; 4] = [
    "Comparing bytes is faster than comparing characters.",
    "Every string is a sequence of the 256 byte values, so no input is ever out of vocabulary, \
     and the base vocabulary stays at 256 symbols.",
    "Merging bytes always ends at whole words.",
    "UTF-8 stores every character in exactly one byte.",
];
const BYTE_LEVEL_ANSWER: u64 = 1;

impl Grader for ByteLevel {
    fn id(&self) -> &'static str {
        "byte-level"
    }

    fn kind(&self) -> Kind {
        Kind::Choice {
            options: BYTE_LEVEL_OPTIONS.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn cases(&self) -> Vec<Case> {
        vec![Case {
            name: "your answer".into(),
            args: vec![],
        }]
    }

    fn expected(&self, _case: &Case) -> Result<Value> {
        Ok(json!(BYTE_LEVEL_ANSWER))
    }

    fn hint(&self, _case: &Case, got: &Value) -> Option<String> {
        match got.as_u64()? {
            0 => Some("speed is not the reason: the sequences get longer, not shorter".into()),
            2 => Some("merges follow frequency, not word boundaries; GPT-2 splits words with a regex first".into()),
            3 => Some("UTF-8 uses 1 to 4 bytes per character: é is two, most emoji four".into()),
            _ => None,
        }
    }
}
