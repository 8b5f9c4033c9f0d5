//! Counts the character bigrams of a text you type and shows the table as a heat map, with
//! the bigram model's loss on the same text. Pure arithmetic, so it runs on the page.

use std::collections::BTreeMap;

use super::config::BigramCountsConfig;
use leptos::prelude::*;

/// Characters shown in the table: the most frequent ones (the rest are still counted).
const SHOWN: usize = 12;

struct Table {
    chars: Vec<char>,
    counts: BTreeMap<(char, char), usize>,
    nll: f64,
    pairs: usize,
}

fn table(text: &str) -> Table {
    let chars: Vec<char> = text.chars().collect();
    let mut freq: BTreeMap<char, usize> = BTreeMap::new();
    for &c in &chars {
        *freq.entry(c).or_default() += 1;
    }
    let mut counts: BTreeMap<(char, char), usize> = BTreeMap::new();
    for w in chars.windows(2) {
        *counts.entry((w[0], w[1])).or_default() += 1;
    }
    // Loss of the bigram model on its own training text, with add-one smoothing over the
    // characters that occur (so no pair has probability zero).
    let vocab = freq.len().max(1);
    let mut row_total: BTreeMap<char, usize> = BTreeMap::new();
    for (&(a, _), &n) in &counts {
        *row_total.entry(a).or_default() += n;
    }
    let pairs = chars.len().saturating_sub(1);
    let nll = if pairs == 0 {
        0.0
    } else {
        chars
            .windows(2)
            .map(|w| {
                let n = counts[&(w[0], w[1])] as f64 + 1.0;
                let total = row_total[&w[0]] as f64 + vocab as f64;
                -(n / total).ln()
            })
            .sum::<f64>()
            / pairs as f64
    };
    let mut by_freq: Vec<(char, usize)> = freq.into_iter().collect();
    by_freq.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut shown: Vec<char> = by_freq.into_iter().take(SHOWN).map(|(c, _)| c).collect();
    shown.sort();
    Table {
        chars: shown,
        counts,
        nll,
        pairs,
    }
}

fn label(c: char) -> String {
    match c {
        ' ' => "␣".into(),
        '\n' => "⏎".into(),
        c => c.to_string(),
    }
}

#[component]
pub fn BigramCounts(config: BigramCountsConfig) -> impl IntoView {
    let text = RwSignal::new(config.text);
    view! {
        <div class="bigram-counts" data-testid="bigram-counts">
            <p class="widget-title">"Count the bigrams of any text"</p>
            <textarea
                rows="2"
                aria-label="text to count"
                prop:value=move || text.get()
                on:input=move |ev| text.set(event_target_value(&ev))
            ></textarea>
            {move || {
                let t = text.with(|x| table(x));
                let max = t.counts.values().copied().max().unwrap_or(1) as f64;
                let vocab = t.chars.len();
                view! {
                    <p class="stat">
                        {format!(
                            "{} bigrams · loss of the smoothed bigram model on this text: {:.3} nats (uniform guess over its {} distinct characters shown: ln {} = {:.3})",
                            t.pairs,
                            t.nll,
                            vocab,
                            vocab,
                            (vocab.max(1) as f64).ln()
                        )}
                    </p>
                    <div class="table-scroll">
                        <table class="heat">
                            <thead>
                                <tr>
                                    <th scope="col" title="previous character ↓, next character →">"↓ then →"</th>
                                    {t.chars.iter().map(|c| view! { <th scope="col">{label(*c)}</th> }).collect_view()}
                                </tr>
                            </thead>
                            <tbody>
                                {t.chars.iter().map(|a| {
                                    view! {
                                        <tr>
                                            <th scope="row">{label(*a)}</th>
                                            {t.chars.iter().map(|b| {
                                                let n = t.counts.get(&(*a, *b)).copied().unwrap_or(0);
                                                let heat = (n as f64 / max * 100.0).round();
                                                view! {
                                                    <td style=format!("--h: {heat}%")>
                                                        {if n > 0 { n.to_string() } else { String::new() }}
                                                    </td>
                                                }
                                            }).collect_view()}
                                        </tr>
                                    }
                                }).collect_view()}
                            </tbody>
                        </table>
                    </div>
                }
            }}
        </div>
    }
}
