//! Lesson C4: BERT, GPT and T5 side by side. BERT fills the `_`s of a text with its most
//! likely characters, the GPT continues a prompt, T5 writes a number given in words as
//! digits; under each answer, the attention masks that model ran with on that very input
//! (encoder: full; decoder: causal; cross-attention: decoder rows over encoder columns).

use leptos::prelude::*;

use super::config::ArchitecturesConfig;
use crate::worker::protocol::MaskFill;
use crate::worker::{EngineClient, Event, Request};

/// Characters the GPT adds to the prompt.
const CONTINUE_TOKENS: usize = 24;
/// Side of a mask cell in SVG units, and room for the labels.
const CELL: f64 = 10.0;
const MARGIN: f64 = 13.0;

#[derive(Clone, Debug, PartialEq)]
enum Answer<T> {
    Waiting,
    Ready(T),
    Failed(String),
}

#[derive(Clone, Debug, PartialEq)]
struct Filled {
    tokens: Vec<String>,
    fills: Vec<MaskFill>,
    mask: Vec<Vec<bool>>,
}

#[derive(Clone, Debug, PartialEq)]
struct Continued {
    prompt: Vec<String>,
    generated: Vec<String>,
    mask: Vec<Vec<bool>>,
}

#[derive(Clone, Debug, PartialEq)]
struct Translated {
    number: u32,
    source: String,
    held_out: bool,
    source_tokens: Vec<String>,
    target_tokens: Vec<String>,
    output: String,
    masks: [Vec<Vec<bool>>; 3],
}

/// A token as a label: spaces and newlines made visible.
fn label(t: &str) -> String {
    t.replace(' ', "␣").replace('\n', "⏎")
}

/// A boolean mask as an SVG grid, queries down (`rows`), keys across (`cols`); allowed cells
/// filled, blocked ones (−∞) hatched.
fn mask_grid(
    testid: &'static str,
    caption: String,
    rows: &[String],
    cols: &[String],
    mask: &[Vec<bool>],
) -> impl IntoView + use<> {
    let (t_q, t_k) = (mask.len(), mask.first().map_or(0, Vec::len));
    let (w, h) = (MARGIN + CELL * t_k as f64, MARGIN + CELL * t_q as f64);
    let allowed = mask.iter().flatten().filter(|&&a| a).count();
    let cells = mask
        .iter()
        .enumerate()
        .flat_map(|(i, row)| row.iter().enumerate().map(move |(j, &a)| (i, j, a)))
        .map(|(i, j, a)| {
            view! {
                <rect
                    class=if a { "mask-cell allowed" } else { "mask-cell blocked" }
                    x=MARGIN + CELL * j as f64
                    y=MARGIN + CELL * i as f64
                    width=CELL
                    height=CELL
                >
                    <title>
                        {format!(
                            "query {i} '{}' → key {j} '{}': {}",
                            label(rows.get(i).map_or("", String::as_str)),
                            label(cols.get(j).map_or("", String::as_str)),
                            if a { "may attend (0)" } else { "masked (−∞)" },
                        )}
                    </title>
                </rect>
            }
        })
        .collect_view();
    let col_labels = cols
        .iter()
        .enumerate()
        .map(|(j, tok)| {
            view! {
                <text class="attn-label" x=MARGIN + CELL * j as f64 + CELL / 2.0 y=MARGIN - 4.0 text-anchor="middle">
                    {label(tok)}
                </text>
            }
        })
        .collect_view();
    let row_labels = rows
        .iter()
        .enumerate()
        .map(|(i, tok)| {
            view! {
                <text class="attn-label" x=MARGIN - 3.0 y=MARGIN + CELL * i as f64 + CELL / 2.0 + 3.0 text-anchor="end">
                    {label(tok)}
                </text>
            }
        })
        .collect_view();
    view! {
        <figure class="mask-figure">
            <svg
                data-testid=testid
                data-rows=t_q
                data-cols=t_k
                data-allowed=allowed
                viewBox=format!("0 0 {w} {h}")
                style=format!("max-width: {}px", (w * 1.6).round())
                role="img"
                aria-label="attention mask, queries down, keys across"
            >
                {col_labels}
                {row_labels}
                {cells}
            </svg>
            <figcaption>{caption}</figcaption>
        </figure>
    }
}

fn waiting_or_failed<T>(answer: &Answer<T>, testid: &'static str) -> Option<AnyView> {
    match answer {
        Answer::Waiting => Some(view! { <p class="status">"Running…"</p> }.into_any()),
        Answer::Failed(why) => {
            Some(view! { <p class="problem" data-testid=testid>{why.clone()}</p> }.into_any())
        }
        Answer::Ready(_) => None,
    }
}

#[component]
pub fn Architectures(config: ArchitecturesConfig) -> impl IntoView {
    let masked = RwSignal::new(config.masked.clone());
    let prompt = RwSignal::new(config.prompt.clone());
    let number = RwSignal::new(config.number.to_string());
    let filled = RwSignal::new(Answer::<Filled>::Waiting);
    let continued = RwSignal::new(Answer::<Continued>::Waiting);
    let translated = RwSignal::new(Answer::<Translated>::Waiting);

    let client = EngineClient::get();
    let subscription = client.as_ref().ok().map(|client| {
        client.subscribe(move |ev| match ev {
            Event::MaskFilled {
                tokens,
                fills,
                mask,
            } => filled.set(Answer::Ready(Filled {
                tokens: tokens.clone(),
                fills: fills.clone(),
                mask: mask.clone(),
            })),
            Event::Continued {
                prompt_tokens,
                generated_tokens,
                mask,
            } => continued.set(Answer::Ready(Continued {
                prompt: prompt_tokens.clone(),
                generated: generated_tokens.clone(),
                mask: mask.clone(),
            })),
            Event::Translated {
                number,
                source,
                held_out,
                source_tokens,
                target_tokens,
                output,
                encoder_mask,
                decoder_mask,
                cross_mask,
            } => translated.set(Answer::Ready(Translated {
                number: *number,
                source: source.clone(),
                held_out: *held_out,
                source_tokens: source_tokens.clone(),
                target_tokens: target_tokens.clone(),
                output: output.clone(),
                masks: [
                    encoder_mask.clone(),
                    decoder_mask.clone(),
                    cross_mask.clone(),
                ],
            })),
            Event::Error { what, message } => match what.as_str() {
                "fill mask" => filled.set(Answer::Failed(message.clone())),
                "continue" => continued.set(Answer::Failed(message.clone())),
                "translate" => translated.set(Answer::Failed(message.clone())),
                _ => {}
            },
            _ => {}
        })
    });
    StoredValue::new_local(subscription);

    let send = move |request: Request| {
        if let Ok(client) = EngineClient::get() {
            client.send(&request);
        }
    };
    let (bert_url, gpt_url, t5_url) = (config.bert.clone(), config.gpt.clone(), config.t5.clone());
    let fill = move || {
        filled.set(Answer::Waiting);
        send(Request::FillMask {
            url: bert_url.clone(),
            text: masked.get_untracked(),
        });
    };
    let extend = move || {
        continued.set(Answer::Waiting);
        send(Request::Continue {
            url: gpt_url.clone(),
            prompt: prompt.get_untracked(),
            max_new_tokens: CONTINUE_TOKENS,
        });
    };
    let translate = move || match number.get_untracked().trim().parse::<u32>() {
        Ok(n) => {
            translated.set(Answer::Waiting);
            send(Request::Translate {
                url: t5_url.clone(),
                number: n,
            });
        }
        Err(_) => translated.set(Answer::Failed("type a whole number from 0 to 9999".into())),
    };
    // All three run once on arrival, so the page opens with answers and masks.
    fill.clone()();
    extend.clone()();
    translate.clone()();
    if let Err(e) = &client {
        for_each_failed(e, filled, continued, translated);
    }

    let bert_view = move || {
        let answer = filled.get();
        waiting_or_failed(&answer, "arch-bert-error").unwrap_or_else(|| {
            let Answer::Ready(f) = answer else {
                unreachable!()
            };
            let fills = f
                .fills
                .iter()
                .map(|fill| {
                    let candidates = fill
                        .candidates
                        .iter()
                        .map(|(c, p)| {
                            view! {
                                <li data-char=c.clone() data-prob=format!("{p:.4}")>
                                    <code>{label(c)}</code>
                                    {format!(" {:.0}%", p * 100.0)}
                                </li>
                            }
                        })
                        .collect_view();
                    view! {
                        <div class="arch-fill">
                            <span>{format!("position {}: ", fill.position)}</span>
                            <ol class="arch-candidates" data-testid="arch-bert-candidates">
                                {candidates}
                            </ol>
                        </div>
                    }
                })
                .collect_view();
            let best: String = f
                .tokens
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    f.fills
                        .iter()
                        .find(|fill| fill.position == i)
                        .and_then(|fill| fill.candidates.first())
                        .map_or(t.clone(), |(c, _)| c.clone())
                })
                .collect();
            view! {
                <p class="stat" data-testid="arch-bert-output">{best}</p>
                {fills}
                {mask_grid(
                    "arch-bert-mask",
                    "BERT's self-attention: every query sees every key".into(),
                    &f.tokens,
                    &f.tokens,
                    &f.mask,
                )}
            }
            .into_any()
        })
    };

    let gpt_view = move || {
        let answer = continued.get();
        waiting_or_failed(&answer, "arch-gpt-error").unwrap_or_else(|| {
            let Answer::Ready(c) = answer else {
                unreachable!()
            };
            let all: Vec<String> = c.prompt.iter().chain(&c.generated).cloned().collect();
            view! {
                <p class="stat" data-testid="arch-gpt-output">
                    {c.prompt.concat()}
                    <mark>{c.generated.concat()}</mark>
                </p>
                {mask_grid(
                    "arch-gpt-mask",
                    "The GPT's self-attention: causal, key ≤ query".into(),
                    &all,
                    &all,
                    &c.mask,
                )}
            }
            .into_any()
        })
    };

    let t5_view = move || {
        let answer = translated.get();
        waiting_or_failed(&answer, "arch-t5-error").unwrap_or_else(|| {
            let Answer::Ready(t) = answer else { unreachable!() };
            let right = t.output == t.number.to_string();
            let [enc, dec, cross] = t.masks.clone();
            view! {
                <p class="stat" data-testid="arch-t5-output" data-right=right.to_string() data-held-out=t.held_out.to_string()>
                    {format!("“{}” → ", t.source)}
                    <strong>{t.output.clone()}</strong>
                    {if right { " ✓" } else { " ✗" }}
                    {if t.held_out {
                        " (held out: never seen in training)"
                    } else {
                        " (in the training set)"
                    }}
                </p>
                <div class="mask-row">
                    {mask_grid(
                        "arch-t5-encoder-mask",
                        "Encoder self-attention: full".into(),
                        &t.source_tokens,
                        &t.source_tokens,
                        &enc,
                    )}
                    {mask_grid(
                        "arch-t5-decoder-mask",
                        "Decoder self-attention: causal".into(),
                        &t.target_tokens,
                        &t.target_tokens,
                        &dec,
                    )}
                </div>
                {mask_grid(
                    "arch-t5-cross-mask",
                    "Cross-attention: decoder rows over encoder columns, not causal".into(),
                    &t.target_tokens,
                    &t.source_tokens,
                    &cross,
                )}
            }
            .into_any()
        })
    };

    view! {
        <div class="architectures" data-testid="architectures">
            <section class="arch-panel">
                <p class="widget-title">"Encoder: BERT fills in the _"</p>
                <form class="controls" on:submit=move |ev| { ev.prevent_default(); fill(); }>
                    <label class="grow">
                        "Text "
                        <input
                            type="text"
                            data-testid="arch-bert-text"
                            maxlength="64"
                            prop:value=move || masked.get()
                            on:input=move |ev| masked.set(event_target_value(&ev))
                        />
                    </label>
                    <button type="submit" class="primary" data-testid="arch-bert-run">"Fill"</button>
                </form>
                {bert_view}
            </section>
            <section class="arch-panel">
                <p class="widget-title">"Decoder: the GPT continues"</p>
                <form class="controls" on:submit=move |ev| { ev.prevent_default(); extend(); }>
                    <label class="grow">
                        "Prompt "
                        <input
                            type="text"
                            data-testid="arch-gpt-prompt"
                            maxlength="40"
                            prop:value=move || prompt.get()
                            on:input=move |ev| prompt.set(event_target_value(&ev))
                        />
                    </label>
                    <button type="submit" class="primary" data-testid="arch-gpt-run">"Continue"</button>
                </form>
                {gpt_view}
            </section>
            <section class="arch-panel">
                <p class="widget-title">"Encoder-decoder: T5 writes a number in digits"</p>
                <form class="controls" on:submit=move |ev| { ev.prevent_default(); translate(); }>
                    <label>
                        "Number "
                        <input
                            type="number"
                            min="0"
                            max="9999"
                            data-testid="arch-t5-number"
                            prop:value=move || number.get()
                            on:input=move |ev| number.set(event_target_value(&ev))
                        />
                    </label>
                    <button type="submit" class="primary" data-testid="arch-t5-run">"Translate"</button>
                </form>
                {t5_view}
            </section>
        </div>
    }
}

fn for_each_failed(
    why: &str,
    filled: RwSignal<Answer<Filled>>,
    continued: RwSignal<Answer<Continued>>,
    translated: RwSignal<Answer<Translated>>,
) {
    filled.set(Answer::Failed(why.to_string()));
    continued.set(Answer::Failed(why.to_string()));
    translated.set(Answer::Failed(why.to_string()));
}
