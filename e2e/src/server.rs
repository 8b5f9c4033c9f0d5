//! A static file server for the built site: correct MIME types (Pyodide hangs if `.wasm` is
//! not `application/wasm`) and the single-page fallback (a lesson URL reloads to index.html).

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};

use anyhow::Result;

pub struct StaticServer {
    addr: std::net::SocketAddr,
}

impl StaticServer {
    pub fn start(root: &Path) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let root = root.to_path_buf();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let root = root.clone();
                std::thread::spawn(move || {
                    let _ = serve(&root, stream);
                });
            }
        });
        Ok(Self { addr })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

fn mime(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript",
        "wasm" => "application/wasm",
        "css" => "text/css",
        "json" => "application/json",
        "txt" | "md" => "text/plain; charset=utf-8",
        "zip" => "application/zip",
        "png" => "image/png",
        "svg" => "image/svg+xml",
        _ => "application/octet-stream",
    }
}

fn resolve(root: &Path, url_path: &str) -> PathBuf {
    let clean = url_path.split(['?', '#']).next().unwrap_or("/");
    let rel: PathBuf = clean
        .split('/')
        .filter(|s| !s.is_empty() && *s != "." && *s != "..")
        .collect();
    let path = root.join(&rel);
    if path.is_file() {
        path
    } else {
        // Client-side routes (/lesson/x) have no file: serve the app.
        root.join("index.html")
    }
}

fn serve(root: &Path, mut stream: TcpStream) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header == "\r\n" {
            break;
        }
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("");
    let target = parts.next().unwrap_or("/");
    let path = resolve(root, target);
    let wanted_file = Path::new(target.split('?').next().unwrap_or(""))
        .extension()
        .is_some();
    let (status, body, kind) = match std::fs::read(&path) {
        Ok(body)
            if !(wanted_file && path.ends_with("index.html") && !target.ends_with(".html")) =>
        {
            ("200 OK", body, mime(&path))
        }
        _ => ("404 Not Found", b"not found".to_vec(), "text/plain"),
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    if method != "HEAD" {
        stream.write_all(&body)?;
    }
    stream.flush()
}
