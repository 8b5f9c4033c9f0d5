//! What the site remembers in `localStorage`: exercise passes, drafts, the theme. Every key
//! starts with `aw.` so that export and erase touch only ours.

use std::collections::BTreeMap;

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

const PREFIX: &str = "aw.";
const PROGRESS_KEY: &str = "aw.progress";

fn local() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok().flatten()
}

pub fn get(key: &str) -> Option<String> {
    local()?.get_item(key).ok().flatten()
}

pub fn set(key: &str, value: &str) {
    if let Some(s) = local() {
        // A full or disabled storage only loses the convenience, never the page.
        let _ = s.set_item(key, value);
    }
}

pub fn remove(key: &str) {
    if let Some(s) = local() {
        let _ = s.remove_item(key);
    }
}

/// A passed exercise, tied to the content it was passed on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pass {
    pub hash: String,
    /// Milliseconds since the epoch.
    pub at: f64,
}

/// The student's progress: exercise id to its pass.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    pub passes: BTreeMap<String, Pass>,
}

impl Progress {
    pub fn load() -> Self {
        get(PROGRESS_KEY)
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default()
    }

    pub fn save(&self) {
        if let Ok(s) = serde_json::to_string(self) {
            set(PROGRESS_KEY, &s);
        }
    }

    /// Passed, on the current content of the exercise.
    pub fn passed(&self, id: &str, hash: &str) -> bool {
        self.passes.get(id).is_some_and(|p| p.hash == hash)
    }
}

/// The progress signal shared by every page (provided in `App`).
#[derive(Clone, Copy)]
pub struct ProgressStore(pub RwSignal<Progress>);

impl ProgressStore {
    pub fn record_pass(&self, id: &str, hash: &str) {
        self.0.update(|p| {
            p.passes.insert(
                id.to_string(),
                Pass {
                    hash: hash.to_string(),
                    at: js_sys::Date::now(),
                },
            );
            p.save();
        });
    }
}

pub fn use_progress() -> ProgressStore {
    expect_context::<ProgressStore>()
}

pub fn draft_key(exercise: &str) -> String {
    format!("{PREFIX}draft.{exercise}")
}

/// Every `aw.` key and its value, as one JSON object (for export).
pub fn export_all() -> String {
    let mut all = BTreeMap::new();
    if let Some(s) = local() {
        let n = s.length().unwrap_or(0);
        for i in 0..n {
            if let Ok(Some(key)) = s.key(i)
                && key.starts_with(PREFIX)
                && let Ok(Some(value)) = s.get_item(&key)
            {
                all.insert(key, value);
            }
        }
    }
    serde_json::to_string_pretty(&all).unwrap_or_else(|_| "{}".into())
}

/// Removes every `aw.` key.
pub fn erase_all() {
    if let Some(s) = local() {
        let n = s.length().unwrap_or(0);
        let keys: Vec<String> = (0..n)
            .filter_map(|i| s.key(i).ok().flatten())
            .filter(|k| k.starts_with(PREFIX))
            .collect();
        for k in keys {
            let _ = s.remove_item(&k);
        }
    }
}

/// Restores keys from an export made by [`export_all`]; returns how many were restored.
pub fn import_all(json: &str) -> Result<usize, String> {
    let all: BTreeMap<String, String> =
        serde_json::from_str(json).map_err(|e| format!("not a progress export: {e}"))?;
    let mut n = 0;
    for (k, v) in all.iter().filter(|(k, _)| k.starts_with(PREFIX)) {
        set(k, v);
        n += 1;
    }
    Ok(n)
}
