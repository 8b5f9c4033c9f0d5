//! The harness for the site's end-to-end tests: a static file server for `dist/` on
//! 127.0.0.1, chromedriver with headless Chromium, and a small synchronous WebDriver client.
//!
//! WebDriver is plain JSON over HTTP, so the client speaks it directly over a `TcpStream`
//! (no async runtime, no TLS: everything is on loopback).
//!
//! Environment: `AW_SITE_DIR` (the built site; unset, the tests skip), `CHROMEDRIVER` and
//! `CHROMIUM` (default `/usr/bin/chromedriver`, `/usr/bin/chromium`).

pub mod server;
pub mod webdriver;

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

pub use server::StaticServer;
pub use webdriver::{Browser, Element};

/// Browsers are heavy on a 2-core machine: tests take turns.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The built site, from `AW_SITE_DIR`. `None` when unset: a plain `cargo test --workspace`
/// has no built site and no browser, so the tests skip (`cargo xtask test` sets it).
pub fn site_dir() -> Option<PathBuf> {
    std::env::var_os("AW_SITE_DIR").map(PathBuf::from)
}

/// Where screenshots go: `target/e2e/`.
pub fn screenshot_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/e2e");
    let _ = std::fs::create_dir_all(&dir);
    dir
}

/// A served site and a browser on it, for one test.
pub struct Session {
    pub browser: Browser,
    pub server: StaticServer,
    _turn: MutexGuard<'static, ()>,
}

impl Session {
    /// `Ok(None)` when `AW_SITE_DIR` is unset (the test is skipped).
    pub fn start() -> Result<Option<Self>> {
        Self::start_with(&[])
    }

    /// A session whose Chromium has WebGPU (SwiftShader's software adapter).
    pub fn start_with_webgpu() -> Result<Option<Self>> {
        Self::start_with(&["--enable-unsafe-webgpu"])
    }

    fn start_with(flags: &[&str]) -> Result<Option<Self>> {
        let Some(dir) = site_dir() else {
            eprintln!("skipped: AW_SITE_DIR is not set (run `cargo xtask test`)");
            return Ok(None);
        };
        let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        if !dir.join("index.html").exists() {
            bail!(
                "no built site at {}; build it first (cargo xtask test does, or `trunk build --release`)",
                dir.display()
            );
        }
        let server = StaticServer::start(&dir)?;
        let browser = Browser::start_with(flags).context("starting chromedriver and Chromium")?;
        Ok(Some(Self {
            browser,
            server,
            _turn: turn,
        }))
    }

    /// Opens a path of the site, e.g. `/lesson/bigram-to-gpt`.
    pub fn open(&self, path: &str) -> Result<()> {
        self.browser.goto(&format!("{}{path}", self.server.url()))
    }

    /// Puts `code` in an exercise's editor, runs it, and returns the feedback text once
    /// graded (a verdict, the time-limit message or an error).
    pub fn run_code(&self, id: &str, code: &str) -> Result<String> {
        let ex = exercise(id);
        let editor = self
            .browser
            .wait(&format!("{ex} [data-testid='editor']"), 60)?;
        self.browser.set_value(&editor, code)?;
        let run = self.browser.wait(&format!("{ex} [data-testid='run']"), 5)?;
        self.browser.click(&run)?;
        let feedback = format!("{ex} [data-testid='feedback']");
        wait_for(Duration::from_secs(60), "a verdict", || {
            let t = self
                .browser
                .find(&feedback)
                .and_then(|e| self.browser.text(&e).ok())?;
            (t.contains('✓') || t.contains('✗') || t.contains("Time limit") || t.contains("Error"))
                .then_some(t)
        })
    }

    pub fn screenshot(&self, name: &str) -> Result<()> {
        let path = screenshot_dir().join(format!("{name}.png"));
        self.browser.screenshot(&path)
    }
}

/// The CSS selector of an exercise's box, by its id in the lesson.
pub fn exercise(id: &str) -> String {
    format!("[data-testid='exercise-{id}']")
}

/// How many lessons are written (`lessons/*.md`): each is live on the course map.
pub fn written_lessons() -> usize {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../lessons");
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter(|e| e.path().extension().is_some_and(|x| x == "md"))
                .count()
        })
        .unwrap_or(0)
}

/// Polls `f` until it returns `Some`, or fails after `timeout` with `what`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> Result<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if start.elapsed() > timeout {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
