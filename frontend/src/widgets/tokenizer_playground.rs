//! The tokenizer playground: one text, coloured token by token under the character
//! tokenizer, our BPE trained here at a chosen vocabulary size, and the shipped BPE.

use leptos::prelude::*;

use super::config::TokenizerPlaygroundConfig;
use super::thousands;
use crate::worker::protocol::{Piece, TokenizerChoice};
use crate::worker::{EngineClient, Event, Request};

/// Bytes of corpus our BPE trains on in the tab: enough for real merges, a few seconds.
const TRAIN_BYTES: usize = 200_000;

#[derive(Clone, Debug, PartialEq)]
enum Row {
    Waiting(String),
    Tokens(Vec<Piece>),
}

#[component]
pub fn TokenizerPlayground(config: TokenizerPlaygroundConfig) -> impl IntoView {
    let text = RwSignal::new(config.text.clone());
    let vocab_size = RwSignal::new(config.vocab_size);
    let char_row = RwSignal::new(Row::Waiting("…".into()));
    let trained_row = RwSignal::new(Row::Waiting(
        "Not trained yet: choose a vocabulary size and press Train.".into(),
    ));
    let shipped_row = RwSignal::new(Row::Waiting("Loading the shipped tokenizer…".into()));
    let trained_ready = RwSignal::new(false);
    let shipped_ready = RwSignal::new(false);
    let training = RwSignal::new(false);
    let trained_info = RwSignal::new(String::new());
    let shipped_info = RwSignal::new(String::new());

    let tokenize_all = move || {
        let Ok(client) = EngineClient::get() else {
            return;
        };
        let t = text.get_untracked();
        client.send(&Request::Tokenize {
            text: t.clone(),
            with: TokenizerChoice::Char,
        });
        if trained_ready.get_untracked() {
            client.send(&Request::Tokenize {
                text: t.clone(),
                with: TokenizerChoice::Trained,
            });
        }
        if shipped_ready.get_untracked() {
            client.send(&Request::Tokenize {
                text: t,
                with: TokenizerChoice::Shipped,
            });
        }
    };

    let client = EngineClient::get();
    let subscription = client.as_ref().ok().map(|client| {
        client.subscribe(move |ev| match ev {
            Event::Tokens { with, pieces } => {
                let row = match with {
                    TokenizerChoice::Char => char_row,
                    TokenizerChoice::Trained => trained_row,
                    TokenizerChoice::Shipped => shipped_row,
                };
                row.set(Row::Tokens(pieces.clone()));
            }
            Event::Progress { what, done, total } if what == "bpe" => {
                trained_row.set(Row::Waiting(format!("Training: merge {done} of {total}…")));
            }
            Event::BpeReady {
                shipped,
                vocab_size,
                merges,
            } => {
                let info = format!("vocabulary {vocab_size} ({merges} merges)");
                if *shipped {
                    shipped_ready.set(true);
                    shipped_info.set(info);
                } else {
                    trained_ready.set(true);
                    training.set(false);
                    trained_info.set(info);
                }
                tokenize_all();
            }
            Event::Error { what, message } if what == "bpe" => {
                training.set(false);
                trained_row.set(Row::Waiting(format!("training failed: {message}")));
            }
            Event::Error { what, message } if what == "shipped bpe" => {
                shipped_row.set(Row::Waiting(format!(
                    "The shipped tokenizer is not available ({message})."
                )));
            }
            _ => {}
        })
    });
    StoredValue::new_local(subscription);
    if let Ok(client) = &client {
        client.send(&Request::LoadShippedBpe {
            url: config.shipped.clone(),
        });
    }
    tokenize_all();

    let corpus = config.corpus.clone();
    let train = move |_| {
        let Ok(client) = EngineClient::get() else {
            return;
        };
        training.set(true);
        trained_ready.set(false);
        trained_row.set(Row::Waiting("Loading the corpus…".into()));
        client.send(&Request::TrainBpe {
            corpus_url: corpus.clone(),
            corpus_bytes: TRAIN_BYTES,
            vocab_size: vocab_size.get_untracked(),
        });
    };

    view! {
        <div class="tokenizer-playground" data-testid="tokenizer-playground">
            <p class="widget-title">"Tokenizer playground"</p>
            <textarea
                rows="3"
                aria-label="text to tokenize"
                data-testid="playground-text"
                prop:value=move || text.get()
                on:input=move |ev| {
                    text.set(event_target_value(&ev));
                    tokenize_all();
                }
            ></textarea>
            <div class="controls">
                <label>
                    {move || format!("our BPE's vocabulary: {} ", vocab_size.get())}
                    <input
                        type="range"
                        min="260"
                        max="2048"
                        step="4"
                        prop:value=move || vocab_size.get().to_string()
                        on:input=move |ev| {
                            vocab_size.set(event_target_value(&ev).parse().unwrap_or(512))
                        }
                    />
                </label>
                <button class="primary" data-testid="bpe-train" on:click=train disabled=move || training.get()>
                    {move || if training.get() { "Training…" } else { "Train our BPE" }}
                </button>
            </div>
            <TokenRow label="characters" info=Signal::derive(|| "one token per character".to_string()) row=char_row testid="row-char" />
            <TokenRow label="our BPE" info=trained_info.into() row=trained_row testid="row-trained" />
            <TokenRow label="shipped BPE" info=shipped_info.into() row=shipped_row testid="row-shipped" />
        </div>
    }
}

#[component]
fn TokenRow(
    label: &'static str,
    info: Signal<String>,
    row: RwSignal<Row>,
    testid: &'static str,
) -> impl IntoView {
    view! {
        <div class="token-row" data-testid=testid>
            <div class="token-row-head">
                <strong>{label}</strong>
                <span class="stat">{move || info.get()}</span>
                <span class="count" data-testid="token-count">
                    {move || match row.get() {
                        Row::Tokens(p) => format!("{} tokens", thousands(p.len())),
                        Row::Waiting(_) => String::new(),
                    }}
                </span>
            </div>
            <div class="tokens">
                {move || match row.get() {
                    Row::Waiting(msg) => view! { <span class="waiting">{msg}</span> }.into_any(),
                    Row::Tokens(pieces) => pieces
                        .into_iter()
                        .enumerate()
                        .map(|(i, p)| {
                            let shown = p.text.replace(' ', "␣").replace('\n', "⏎");
                            view! {
                                <span class=format!("tok c{}", i % 8) title=format!("id {}", p.id)>{shown}</span>
                            }
                        })
                        .collect_view()
                        .into_any(),
                }}
            </div>
        </div>
    }
}
