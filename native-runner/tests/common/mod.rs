//! A real runner process on 127.0.0.1 with a temporary data directory, and a small blocking
//! HTTP/1.1 client (enough for JSON, uploads and Server-Sent Events) to talk to it.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use engine::protocol::{EventRecord, Job, JobState};
use serde_json::{Value, json};

pub struct Runner {
    child: Child,
    pub addr: String,
    pub token: String,
    pub data_dir: PathBuf,
}

impl Runner {
    /// Starts the built binary on a free port with `data_dir` and extra flags.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Runner {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data_dir.with_extension("log"))
            .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_runner"))
            .args(["--addr", "127.0.0.1:0", "--device", "cpu", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env("RUST_LOG", "runner=debug")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start the runner");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut addr = None;
        for line in lines.by_ref() {
            let line = line.expect("read the runner's stdout");
            if let Some(a) = line.strip_prefix("runner: listening on http://") {
                addr = Some(a.to_string());
            }
            if line.starts_with("runner: training on") {
                break;
            }
        }
        // Keep draining stdout so the runner never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let addr = addr.expect("the runner printed its address");
        let token = std::fs::read_to_string(data_dir.join("token"))
            .unwrap()
            .trim()
            .to_string();
        Runner {
            child,
            addr,
            token,
            data_dir: data_dir.to_path_buf(),
        }
    }

    /// SIGKILL, as a crash would.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, as a service manager would, then waits for the exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.child.wait().unwrap()
    }

    pub fn get(&self, path: &str) -> Response {
        request(&self.addr, "GET", path, &[], None)
    }

    pub fn post(&self, path: &str, body: &Value) -> Response {
        let auth = format!("Bearer {}", self.token);
        request(
            &self.addr,
            "POST",
            path,
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            Some(body.to_string().as_bytes()),
        )
    }

    pub fn put(&self, path: &str, body: &[u8]) -> Response {
        let auth = format!("Bearer {}", self.token);
        request(
            &self.addr,
            "PUT",
            path,
            &[("Authorization", &auth), ("Content-Type", "text/plain")],
            Some(body),
        )
    }

    pub fn submit(&self, spec: &Value) -> Job {
        let response = self.post("/api/jobs", spec);
        assert_eq!(response.status, 201, "submit: {}", response.text());
        response.json()
    }

    pub fn job(&self, id: i64) -> Job {
        self.get(&format!("/api/jobs/{id}")).json()
    }

    /// Polls until the job is in a final state.
    pub fn wait_final(&self, id: i64, timeout: Duration) -> Job {
        let start = Instant::now();
        loop {
            let job = self.job(id);
            if job.state.is_final() {
                return job;
            }
            assert!(
                start.elapsed() < timeout,
                "job {id} still {:?} at step {} after {timeout:?}",
                job.state,
                job.step
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Polls until `f(job)` holds.
    pub fn wait_until(&self, id: i64, timeout: Duration, f: impl Fn(&Job) -> bool) -> Job {
        let start = Instant::now();
        loop {
            let job = self.job(id);
            if f(&job) {
                return job;
            }
            assert!(
                start.elapsed() < timeout,
                "job {id} never got there; now {job:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The event stream of job `id` from after `last_event_id` to its end.
    pub fn events(&self, id: i64, last_event_id: Option<u64>) -> Vec<(u64, EventRecord)> {
        let last = last_event_id.map(|n| n.to_string());
        let mut headers = vec![("Accept", "text/event-stream")];
        if let Some(last) = &last {
            headers.push(("Last-Event-ID", last));
        }
        let response = request(
            &self.addr,
            "GET",
            &format!("/api/jobs/{id}/events"),
            &headers,
            None,
        );
        if response.status == 204 {
            return Vec::new(); // nothing after last_event_id and the job is over
        }
        assert_eq!(response.status, 200);
        assert!(
            response
                .header("content-type")
                .unwrap()
                .starts_with("text/event-stream")
        );
        parse_sse(&response.text())
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json<T: serde::de::DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: status {} body {}", self.status, self.text()))
    }
}

/// One request on a fresh connection (`Connection: close`), read to the end.
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Response {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(body) = body {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    if let Some(body) = body {
        // The server may answer (413) and close before taking the whole body.
        let _ = stream.write_all(body);
    }
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> Response {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP head in {:?}", String::from_utf8_lossy(raw)));
    let head = std::str::from_utf8(&raw[..end]).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let rest = &raw[end + 4..];
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_vec()
    };
    Response {
        status,
        headers,
        body,
    }
}

fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&rest[..eol])
            .unwrap()
            .split(';')
            .next()
            .unwrap();
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        let start = eol + 2;
        body.extend_from_slice(&rest[start..start + size]);
        rest = &rest[start + size + 2..];
    }
    body
}

/// `(id, data)` of every event in an SSE body.
pub fn parse_sse(text: &str) -> Vec<(u64, EventRecord)> {
    let mut out = Vec::new();
    for block in text.split("\n\n") {
        let mut id = None;
        let mut data = String::new();
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("id:") {
                id = Some(v.trim().parse().unwrap());
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.trim_start());
            }
        }
        if let Some(id) = id {
            out.push((id, serde_json::from_str(&data).unwrap()));
        }
    }
    out
}

/// A 1-layer, 32-wide char model: trains a step in milliseconds on one core.
pub fn tiny_spec(corpus: &str, max_steps: usize, checkpoint_interval: usize) -> Value {
    json!({
        "name": "tiny",
        "task": {
            "kind": "pretrain",
            "model": {"vocab_size": 0, "block_size": 16, "n_layer": 1, "n_head": 2, "n_embd": 32},
            "tokenizer": {"kind": "char"}
        },
        "train": {
            "seed": 7, "batch_size": 4, "max_steps": max_steps, "learning_rate": 3e-3,
            "warmup_steps": 2, "eval_interval": 10, "eval_batches": 2
        },
        "corpus": corpus,
        "val_fraction": 0.1,
        "checkpoint_interval": checkpoint_interval
    })
}

/// The first `bytes` of the KJV, cut at a character boundary.
pub fn kjv_slice(bytes: usize) -> String {
    let kjv = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../static/data/kjv.txt"
    ))
    .unwrap();
    let mut end = bytes.min(kjv.len());
    while !kjv.is_char_boundary(end) {
        end -= 1;
    }
    kjv[..end].to_string()
}

/// A runner with corpus "small" (the first 20 kB of the KJV) uploaded.
pub fn start_with_small_corpus(dir: &tempfile::TempDir, extra: &[&str]) -> Runner {
    let runner = Runner::start(&dir.path().join("data"), extra);
    let response = runner.put("/api/corpora/small", kjv_slice(20_000).as_bytes());
    assert_eq!(response.status, 201, "{}", response.text());
    runner
}

pub fn states(events: &[(u64, EventRecord)]) -> Vec<JobState> {
    events
        .iter()
        .filter_map(|(_, r)| match &r.event {
            engine::protocol::JobEvent::State { state, .. } => Some(*state),
            _ => None,
        })
        .collect()
}
