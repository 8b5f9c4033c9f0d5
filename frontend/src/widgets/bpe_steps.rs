//! BPE one merge at a time: the text's bytes as chips, the most frequent pair, the merge.
//! The same rules as the exercises (overlapping counts, ties to the first seen, left-to-right
//! replacement); runs on the page since a few merges of a sentence are instant.

use super::config::BpeStepsConfig;
use leptos::prelude::*;

#[derive(Clone, Debug, PartialEq)]
struct Step {
    pair: (u32, u32),
    count: usize,
    new_id: u32,
}

#[derive(Clone, Debug, PartialEq)]
struct State {
    ids: Vec<u32>,
    /// Bytes of every token id ≥ 256.
    vocab: Vec<Vec<u8>>,
    steps: Vec<Step>,
}

impl State {
    fn new(text: &str) -> Self {
        Self {
            ids: text.bytes().map(u32::from).collect(),
            vocab: Vec::new(),
            steps: Vec::new(),
        }
    }

    fn bytes(&self, id: u32) -> Vec<u8> {
        if id < 256 {
            vec![id as u8]
        } else {
            self.vocab[(id - 256) as usize].clone()
        }
    }

    fn top_pairs(&self, n: usize) -> Vec<((u32, u32), usize)> {
        let mut counts: Vec<((u32, u32), usize)> = Vec::new();
        for w in self.ids.windows(2) {
            match counts.iter_mut().find(|(p, _)| *p == (w[0], w[1])) {
                Some((_, c)) => *c += 1,
                None => counts.push(((w[0], w[1]), 1)),
            }
        }
        // Stable sort keeps first-seen order among ties, as max(counts, key=counts.get) does.
        counts.sort_by_key(|c| std::cmp::Reverse(c.1));
        counts.truncate(n);
        counts
    }

    fn merge_once(&mut self) -> bool {
        let Some(&(pair, count)) = self.top_pairs(1).first() else {
            return false;
        };
        if count < 2 {
            return false;
        }
        let new_id = 256 + self.vocab.len() as u32;
        let mut merged = self.bytes(pair.0);
        merged.extend(self.bytes(pair.1));
        self.vocab.push(merged);
        let mut out = Vec::with_capacity(self.ids.len());
        let mut i = 0;
        while i < self.ids.len() {
            if i + 1 < self.ids.len() && (self.ids[i], self.ids[i + 1]) == pair {
                out.push(new_id);
                i += 2;
            } else {
                out.push(self.ids[i]);
                i += 1;
            }
        }
        self.ids = out;
        self.steps.push(Step {
            pair,
            count,
            new_id,
        });
        true
    }

    fn show(&self, id: u32) -> String {
        String::from_utf8_lossy(&self.bytes(id)).replace(' ', "␣")
    }
}

#[component]
pub fn BpeSteps(config: BpeStepsConfig) -> impl IntoView {
    let text = RwSignal::new(config.text.clone());
    let state = RwSignal::new(State::new(&config.text));
    let max_merges = config.merges;
    let merge = move |_| {
        state.update(|s| {
            if s.steps.len() < max_merges {
                s.merge_once();
            }
        })
    };
    let restart = move |_| state.set(State::new(&text.get_untracked()));
    view! {
        <div class="bpe-steps" data-testid="bpe-steps">
            <p class="widget-title">"BPE, one merge at a time"</p>
            <label>
                "Text "
                <input
                    type="text"
                    prop:value=move || text.get()
                    on:input=move |ev| {
                        let t = event_target_value(&ev);
                        state.set(State::new(&t));
                        text.set(t);
                    }
                />
            </label>
            <div class="controls">
                <button
                    class="primary"
                    data-testid="bpe-merge"
                    on:click=merge
                    disabled=move || state.with(|s| s.steps.len() >= max_merges || s.top_pairs(1).first().is_none_or(|p| p.1 < 2))
                >
                    "Merge the most frequent pair"
                </button>
                <button on:click=restart>"Back to bytes"</button>
                <span class="stat" data-testid="bpe-count">
                    {move || state.with(|s| format!("{} tokens after {} merges", s.ids.len(), s.steps.len()))}
                </span>
            </div>
            <div class="tokens" aria-label="current tokens">
                {move || state.with(|s| {
                    s.ids.iter().map(|&id| {
                        view! {
                            <span class=format!("tok c{}", id % 8) title=format!("id {id}")>{s.show(id)}</span>
                        }
                    }).collect_view()
                })}
            </div>
            <div class="pair-table">
                <p>"Most frequent adjacent pairs now:"</p>
                <ol>
                    {move || state.with(|s| {
                        s.top_pairs(5).into_iter().map(|((a, b), n)| {
                            view! { <li><code>{format!("({a}, {b})")}</code>{format!(" “{}” + “{}” × {n}", s.show(a), s.show(b))}</li> }
                        }).collect_view()
                    })}
                </ol>
            </div>
            <ol class="merge-list" aria-label="merges so far">
                {move || state.with(|s| {
                    s.steps.iter().map(|st| {
                        view! {
                            <li>
                                <code>{format!("({}, {}) → {}", st.pair.0, st.pair.1, st.new_id)}</code>
                                {format!(" “{}” seen {} times", s.show(st.new_id), st.count)}
                            </li>
                        }
                    }).collect_view()
                })}
            </ol>
        </div>
    }
}
