//! Training texts: the KJV the site ships, plus corpora uploaded through the API and kept as
//! `<data-dir>/corpora/<name>.txt`. Uploaded corpora never change once written, so a job
//! resumed after a crash sees the same text it started on.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use engine::protocol::CorpusInfo;

use crate::error::{Error, Result};

pub const KJV: &str = engine::data::KJV;

pub struct Corpora {
    kjv: PathBuf,
    dir: PathBuf,
    /// Texts read so far; a corpus is read from disk once.
    cache: Mutex<HashMap<String, Arc<str>>>,
}

impl Corpora {
    pub fn new(kjv: PathBuf, dir: PathBuf) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self {
            kjv,
            dir,
            cache: Mutex::new(HashMap::new()),
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        if name == KJV {
            self.kjv.clone()
        } else {
            self.dir.join(format!("{name}.txt"))
        }
    }

    /// The text of corpus `name`; a 400 naming `field` if there is none.
    pub fn text(&self, name: &str, field: &str) -> Result<Arc<str>> {
        if let Some(text) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
        {
            return Ok(text.clone());
        }
        check_name(name, field)?;
        let path = self.path(name);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => Arc::<str>::from(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::bad_request(
                    field,
                    format!(
                        "no corpus '{name}'; list them with GET /api/corpora or upload one with PUT /api/corpora/{name}"
                    ),
                ));
            }
            Err(e) => {
                return Err(anyhow::Error::from(e)
                    .context(format!("reading {}", path.display()))
                    .into());
            }
        };
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), text.clone());
        Ok(text)
    }

    pub fn list(&self) -> Result<Vec<CorpusInfo>> {
        let mut out = Vec::new();
        if let Ok(meta) = std::fs::metadata(&self.kjv) {
            out.push(CorpusInfo {
                name: KJV.into(),
                bytes: meta.len(),
                builtin: true,
            });
        }
        let mut uploaded = Vec::new();
        for entry in std::fs::read_dir(&self.dir).context("listing the corpora folder")? {
            let entry = entry.context("listing the corpora folder")?;
            let file_name = entry.file_name();
            let Some(name) = file_name.to_str().and_then(|n| n.strip_suffix(".txt")) else {
                continue;
            };
            uploaded.push(CorpusInfo {
                name: name.to_string(),
                bytes: entry.metadata().map(|m| m.len()).unwrap_or(0),
                builtin: false,
            });
        }
        uploaded.sort_by(|a, b| a.name.cmp(&b.name));
        out.extend(uploaded);
        Ok(out)
    }

    /// Stores an uploaded corpus under `name`, atomically (temporary file, then rename).
    pub fn upload(&self, name: &str, body: &[u8]) -> Result<CorpusInfo> {
        check_name(name, "name")?;
        if name == KJV {
            return Err(Error::Conflict(format!(
                "'{KJV}' is the corpus the runner ships; upload under another name"
            )));
        }
        let text = std::str::from_utf8(body).map_err(|e| {
            Error::bad_request(
                "body",
                format!("the corpus is not UTF-8 text ({e}); convert it to UTF-8"),
            )
        })?;
        if text.is_empty() {
            return Err(Error::bad_request(
                "body",
                "the corpus is empty; send some text",
            ));
        }
        let path = self.path(name);
        let tmp = self
            .dir
            .join(format!(".{name}.txt.tmp-{}", std::process::id()));
        write_new(&tmp, &path, body).map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => Error::Conflict(format!(
                "a corpus named '{name}' already exists and corpora never change (running jobs read them); upload under another name"
            )),
            _ => Error::Internal(anyhow::Error::from(e).context(format!("writing {}", path.display()))),
        })?;
        Ok(CorpusInfo {
            name: name.into(),
            bytes: body.len() as u64,
            builtin: false,
        })
    }
}

/// Writes `tmp`, then links it to `path` only if `path` does not exist yet.
fn write_new(tmp: &Path, path: &Path, body: &[u8]) -> std::io::Result<()> {
    std::fs::write(tmp, body)?;
    std::fs::File::open(tmp)?.sync_all()?;
    // hard_link fails with AlreadyExists instead of replacing, unlike rename.
    let linked = std::fs::hard_link(tmp, path);
    let _ = std::fs::remove_file(tmp);
    linked
}

/// Corpus names become file names: keep them to a safe alphabet.
fn check_name(name: &str, field: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(Error::bad_request(
            field,
            format!("'{name}' is not a corpus name; use 1 to 64 letters, digits, '-' or '_'"),
        ))
    }
}
