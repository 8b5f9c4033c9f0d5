//! A minimal synchronous WebDriver (W3C) client over plain HTTP, and the Chromium it drives.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};

/// The W3C key for element references.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
    _profile: TempDir,
}

#[derive(Clone, Debug)]
pub struct Element(String);

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// One HTTP/1.1 request to chromedriver; returns the JSON body's `value`.
fn http(port: u16, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    // Read the head, then exactly the body: chromedriver may keep the connection open.
    let mut reader = std::io::BufReader::new(stream);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if std::io::BufRead::read_line(&mut reader, &mut line)? == 0 || line == "\r\n" {
            break;
        }
        head.push_str(&line.to_ascii_lowercase());
    }
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|n| n.trim().parse::<usize>().ok());
    let body = match length {
        Some(n) => {
            let mut buf = vec![0; n];
            reader.read_exact(&mut buf)?;
            String::from_utf8_lossy(&buf).into_owned()
        }
        None => {
            // Chunked: size line, data, CRLF, until a zero-size chunk.
            let mut out = Vec::new();
            loop {
                let mut size = String::new();
                std::io::BufRead::read_line(&mut reader, &mut size)?;
                let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
                if n == 0 {
                    break;
                }
                let mut buf = vec![0; n + 2];
                reader.read_exact(&mut buf)?;
                out.extend_from_slice(&buf[..n]);
            }
            String::from_utf8_lossy(&out).into_owned()
        }
    };
    let body = body.as_str();
    let v: Value = serde_json::from_str(body)
        .with_context(|| format!("{method} {path}: not JSON: {body:.200}"))?;
    let value = v.get("value").cloned().unwrap_or(Value::Null);
    if let Some(err) = value.get("error").and_then(|e| e.as_str()) {
        let msg = value.get("message").and_then(|m| m.as_str()).unwrap_or("");
        bail!("{method} {path}: {err}: {msg:.300}");
    }
    Ok(value)
}

impl Browser {
    /// Chromium with the developers' guide's flags; WebGPU is off (no adapter).
    pub fn start() -> Result<Self> {
        Self::start_with(&[])
    }

    /// The same with `extra` flags, e.g. `--enable-unsafe-webgpu`, which gives headless
    /// Chromium a SwiftShader WebGPU adapter.
    pub fn start_with(extra: &[&str]) -> Result<Self> {
        let chromedriver =
            std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let port = free_port()?;
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| {
                format!("cannot run {chromedriver}; apt-get install chromium-driver")
            })?;
        let profile = TempDir(std::env::temp_dir().join(format!("aw-e2e-{port}")));
        let mut browser = Self {
            driver,
            port,
            session: String::new(),
            _profile: profile,
        };
        crate::wait_for(Duration::from_secs(20), "chromedriver to listen", || {
            http(port, "GET", "/status", None).ok()
        })?;
        let mut args: Vec<String> = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1280,1500",
        ]
        .iter()
        .chain(extra)
        .map(|flag| flag.to_string())
        .collect();
        args.push(format!("--user-data-dir={}", browser._profile.0.display()));
        let caps = json!({
            "capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {"binary": chromium, "args": args}
            }}
        });
        let v = http(port, "POST", "/session", Some(&caps))?;
        browser.session = v["sessionId"]
            .as_str()
            .ok_or_else(|| anyhow!("no session id in {v}"))?
            .to_string();
        Ok(browser)
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        http(
            self.port,
            method,
            &format!("/session/{}{path}", self.session),
            body.as_ref(),
        )
    }

    pub fn goto(&self, url: &str) -> Result<()> {
        self.call("POST", "/url", Some(json!({ "url": url })))?;
        Ok(())
    }

    pub fn refresh(&self) -> Result<()> {
        self.call("POST", "/refresh", Some(json!({})))?;
        Ok(())
    }

    pub fn current_url(&self) -> Result<String> {
        Ok(self
            .call("GET", "/url", None)?
            .as_str()
            .unwrap_or("")
            .to_string())
    }

    /// The first element matching a CSS selector, if any.
    pub fn find(&self, css: &str) -> Option<Element> {
        self.call(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        )
        .ok()
        .and_then(|v| v[ELEMENT_KEY].as_str().map(|s| Element(s.to_string())))
    }

    pub fn find_all(&self, css: &str) -> Vec<Element> {
        self.call(
            "POST",
            "/elements",
            Some(json!({"using": "css selector", "value": css})),
        )
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|e| e[ELEMENT_KEY].as_str().map(|s| Element(s.to_string())))
        .collect()
    }

    /// Waits up to `secs` for an element.
    pub fn wait(&self, css: &str, secs: u64) -> Result<Element> {
        crate::wait_for(Duration::from_secs(secs), css, || self.find(css))
    }

    /// Waits up to `secs` for an element whose text contains `needle`.
    pub fn wait_text(&self, css: &str, needle: &str, secs: u64) -> Result<String> {
        crate::wait_for(
            Duration::from_secs(secs),
            &format!("{css} to contain {needle:?}"),
            || {
                let t = self.find(css).and_then(|e| self.text(&e).ok())?;
                t.contains(needle).then_some(t)
            },
        )
    }

    pub fn click(&self, e: &Element) -> Result<()> {
        // Scroll first: a click on an element under the sticky header would miss.
        self.execute(
            "arguments[0].scrollIntoView({block: 'center'});",
            vec![json!({ ELEMENT_KEY: e.0 })],
        )?;
        self.call("POST", &format!("/element/{}/click", e.0), Some(json!({})))?;
        Ok(())
    }

    pub fn text(&self, e: &Element) -> Result<String> {
        Ok(self
            .call("GET", &format!("/element/{}/text", e.0), None)?
            .as_str()
            .unwrap_or("")
            .to_string())
    }

    pub fn send_keys(&self, e: &Element, keys: &str) -> Result<()> {
        self.call(
            "POST",
            &format!("/element/{}/value", e.0),
            Some(json!({ "text": keys })),
        )?;
        Ok(())
    }

    /// Replaces an input's or textarea's value and fires `input`, as typing would.
    pub fn set_value(&self, e: &Element, value: &str) -> Result<()> {
        self.execute(
            "const el = arguments[0]; el.focus(); el.value = arguments[1]; \
             el.dispatchEvent(new Event('input', {bubbles: true}));",
            vec![json!({ ELEMENT_KEY: e.0 }), json!(value)],
        )?;
        Ok(())
    }

    pub fn execute(&self, script: &str, args: Vec<Value>) -> Result<Value> {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
    }

    pub fn element_json(&self, e: &Element) -> Value {
        json!({ ELEMENT_KEY: e.0 })
    }

    pub fn screenshot(&self, path: &Path) -> Result<()> {
        let b64 = self.call("GET", "/screenshot", None)?;
        let bytes = base64_decode(b64.as_str().unwrap_or(""))?;
        std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = http(
            self.port,
            "DELETE",
            &format!("/session/{}", self.session),
            None,
        );
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn base64_decode(s: &str) -> Result<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|c| *c != b'=' && !c.is_ascii_whitespace()) {
        acc = (acc << 6) | val(c).ok_or_else(|| anyhow!("bad base64"))?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}
