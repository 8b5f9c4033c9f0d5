//! Samples from the pre-trained model shipped with the site (`static/models/`), or from the
//! model being trained in this tab.

use leptos::prelude::*;

use super::config::SampleShippedConfig;
use super::thousands;
use crate::worker::protocol::ComputeDevice;
use crate::worker::{EngineClient, Event, Request};

#[derive(Clone, Debug, PartialEq)]
enum ModelState {
    Loading,
    Ready(String),
    Missing(String),
}

#[component]
pub fn SampleShipped(config: SampleShippedConfig) -> impl IntoView {
    let state = RwSignal::new(ModelState::Loading);
    let prompt = RwSignal::new(config.prompt.clone());
    let temperature = RwSignal::new(config.temperature);
    let output = RwSignal::new(String::new());
    let generating = RwSignal::new(false);
    let use_trained = RwSignal::new(false);
    let trained_available = RwSignal::new(false);
    let speed = RwSignal::new((0.0f64, ComputeDevice::Cpu));
    let seed = RwSignal::new(1u64);
    let url = config.model.clone();

    let client = EngineClient::get();
    let url2 = url.clone();
    let subscription = client.as_ref().ok().map(|client| {
        client.subscribe(move |ev| match ev {
            Event::ModelLoaded {
                url,
                n_params,
                vocab_size,
                step,
                val_loss,
            } if *url == url2 => {
                state.set(ModelState::Ready(format!(
                    "{} parameters, {} tokens in the vocabulary, trained {} steps{}",
                    thousands(*n_params),
                    vocab_size,
                    step,
                    val_loss.map_or(String::new(), |l| format!(", validation loss {l:.3}"))
                )));
            }
            Event::Error { what, message } if *what == format!("load {url2}") => {
                state.set(ModelState::Missing(message.clone()));
            }
            Event::Error { what, message } if what == "generate" => {
                generating.set(false);
                output.set(format!("generation failed: {message}"));
            }
            Event::TrainingStarted { .. } => trained_available.set(true),
            Event::Generated {
                trained,
                text,
                done,
                tokens_per_sec,
                device,
            } if *trained == use_trained.get_untracked() => {
                output.set(text.clone());
                speed.set((*tokens_per_sec, *device));
                if *done {
                    generating.set(false);
                }
            }
            _ => {}
        })
    });
    StoredValue::new_local(subscription);
    if let Ok(client) = &client {
        client.send(&Request::LoadModel { url: url.clone() });
    }

    let max_new_tokens = config.max_new_tokens;
    let generate = move || {
        let Ok(client) = EngineClient::get() else {
            return;
        };
        generating.set(true);
        output.set(String::new());
        seed.update(|s| *s += 1);
        client.send(&Request::Generate {
            trained: use_trained.get_untracked(),
            prompt: prompt.get_untracked(),
            max_new_tokens,
            temperature: temperature.get_untracked(),
            seed: seed.get_untracked(),
        });
    };
    let ready = move || matches!(state.get(), ModelState::Ready(_)) || use_trained.get();

    view! {
        <div class="sample-shipped" data-testid="sample-shipped">
            <p class="widget-title">"Sample from a model"</p>
            <p class="model-info" data-testid="shipped-state">
                {move || match state.get() {
                    ModelState::Loading => "Loading the pre-trained model…".to_string(),
                    ModelState::Ready(info) => format!("Pre-trained model: {info}."),
                    ModelState::Missing(why) => format!(
                        "The pre-trained model is not available ({why}). You can still sample from the model you train above."
                    ),
                }}
            </p>
            <div class="controls">
                <label class="choice-inline">
                    <input
                        type="radio"
                        name="sample-source"
                        checked=move || !use_trained.get()
                        on:change=move |_| use_trained.set(false)
                    />
                    "pre-trained model"
                </label>
                <label class="choice-inline">
                    <input
                        type="radio"
                        name="sample-source"
                        checked=move || use_trained.get()
                        disabled=move || !trained_available.get()
                        on:change=move |_| use_trained.set(true)
                    />
                    "the model training above"
                </label>
            </div>
            <form
                class="controls"
                on:submit=move |ev| {
                    ev.prevent_default();
                    generate();
                }
            >
                <label>
                    "Prompt "
                    <input
                        type="text"
                        data-testid="sample-prompt"
                        prop:value=move || prompt.get()
                        on:input=move |ev| prompt.set(event_target_value(&ev))
                    />
                </label>
                <label>
                    {move || format!("temperature {:.1} ", temperature.get())}
                    <input
                        type="range"
                        min="0"
                        max="2"
                        step="0.1"
                        prop:value=move || temperature.get().to_string()
                        on:input=move |ev| {
                            temperature.set(event_target_value(&ev).parse().unwrap_or(1.0))
                        }
                    />
                </label>
                <button
                    type="submit"
                    class="primary"
                    data-testid="sample-generate"
                    disabled=move || generating.get() || !ready()
                >
                    {move || if generating.get() { "Generating…" } else { "Generate" }}
                </button>
            </form>
            <pre class="generated" data-testid="sample-output">{move || output.get()}</pre>
            <p class="stat" data-testid="sample-speed">
                {move || {
                    let (s, device) = speed.get();
                    if s > 0.0 {
                        format!("{s:.0} tokens/s on {}", device.label())
                    } else {
                        String::new()
                    }
                }}
            </p>
        </div>
    }
}
