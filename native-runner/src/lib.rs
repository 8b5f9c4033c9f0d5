//! The native runner: an HTTP service that trains the engine's models on CUDA or the CPU for
//! the site, streams their progress, keeps their checkpoints, and serves the built site.
//!
//! It owns the job store ([`store`]), the executor ([`executor`]), the HTTP layer ([`api`])
//! and start-up ([`run`]); the wire types live in [`engine::protocol`].

pub mod api;
pub mod corpora;
pub mod error;
pub mod executor;
pub mod store;
pub mod validate;

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use candle_core::Device;
use clap::{Parser, ValueEnum};

pub use error::{Error, Result};

/// The shipped corpus, found beside the sources by default.
const DEFAULT_KJV: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../static/data/kjv.txt");

/// Trains Attention Workshop's models for the site: a job API under /api plus the built site.
#[derive(Clone, Debug, Parser)]
#[command(version, about)]
pub struct Args {
    /// Address to listen on; port 0 picks a free port (the address is printed).
    #[arg(long, env = "RUNNER_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Folder for the job database, checkpoints, uploaded corpora and the token.
    #[arg(long, env = "RUNNER_DATA_DIR", default_value = "runner-data")]
    pub data_dir: PathBuf,
    /// Built site to serve at / (the frontend's dist/ folder); none serves only /api.
    #[arg(long, env = "RUNNER_SITE")]
    pub site: Option<PathBuf>,
    /// Jobs trained at the same time; the rest wait in the queue.
    #[arg(long, env = "RUNNER_MAX_CONCURRENT_JOBS", default_value_t = 1)]
    pub max_concurrent_jobs: usize,
    /// Origins allowed to call the API from a browser (comma-separated, e.g.
    /// http://localhost:8081); none allows only the site this runner serves.
    #[arg(long, env = "RUNNER_CORS_ORIGIN", value_delimiter = ',')]
    pub cors_origin: Vec<String>,
    /// Largest corpus upload, in bytes.
    #[arg(long, env = "RUNNER_MAX_UPLOAD_BYTES", default_value_t = 64 << 20)]
    pub max_upload_bytes: usize,
    /// The King James Bible text served as corpus "kjv".
    #[arg(long, env = "RUNNER_KJV", default_value = DEFAULT_KJV)]
    pub kjv: PathBuf,
    /// Where to train: auto picks the first CUDA GPU when built with --features cuda and one
    /// is present, else the CPU.
    #[arg(long, env = "RUNNER_DEVICE", value_enum, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DeviceChoice {
    Auto,
    Cpu,
    Cuda,
}

pub fn pick_device(choice: DeviceChoice) -> anyhow::Result<Device> {
    Ok(match choice {
        DeviceChoice::Cpu => Device::Cpu,
        DeviceChoice::Cuda => Device::new_cuda(0)
            .context("no CUDA device; build with --features cuda on a machine with a GPU")?,
        DeviceChoice::Auto => engine::device::best(),
    })
}

fn lock_data_dir(data_dir: &Path) -> anyhow::Result<std::fs::File> {
    let path = data_dir.join("runner.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another runner is using {}; stop it or give this one another --data-dir",
            data_dir.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", path.display()))
        }
    }
}

/// Reads the bearer token from `<data-dir>/token`, creating it on first start.
pub fn load_or_create_token(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join("token");
    match std::fs::read_to_string(&path) {
        Ok(token) if !token.trim().is_empty() => return Ok(token.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    let bytes: [u8; 32] = rand::random();
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let tmp = data_dir.join(".token.tmp");
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options
            .open(&tmp)
            .with_context(|| format!("writing {}", tmp.display()))?;
        writeln!(file, "{token}")?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(token)
}

/// Starts the runner and serves until Ctrl-C or SIGTERM; then running jobs checkpoint and
/// stay `running`, to resume on the next start.
pub async fn run(args: Args) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    // Held until the process ends (the OS drops it even on SIGKILL): a second runner on the
    // same folder would requeue this one's running jobs and train them twice.
    let _lock = lock_data_dir(&args.data_dir)?;
    // Like cargo's target/: a data directory inside a checkout never shows up in git.
    let ignore = args.data_dir.join(".gitignore");
    if !ignore.exists() {
        std::fs::write(&ignore, "*\n").with_context(|| format!("writing {}", ignore.display()))?;
    }
    let token = load_or_create_token(&args.data_dir)?;
    let store = Arc::new(store::Store::open(&args.data_dir.join("runner.sqlite3"))?);
    let requeued = store.recover()?;
    let corpora = Arc::new(corpora::Corpora::new(
        args.kjv.clone(),
        args.data_dir.join("corpora"),
    )?);
    let device = pick_device(args.device)?;
    let executor = executor::Executor::new(store.clone(), corpora.clone(), &args.data_dir, device)?;
    let workers = executor.spawn(args.max_concurrent_jobs);
    let state = Arc::new(api::AppState {
        store,
        corpora,
        executor: executor.clone(),
        token: token.clone(),
        max_concurrent_jobs: args.max_concurrent_jobs.max(1),
        max_upload_bytes: args.max_upload_bytes,
    });
    let app = api::app(state, args.site.clone(), &args.cors_origin);

    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("binding {}", args.addr))?;
    let addr = listener.local_addr()?;
    {
        // Tests and scripts read these lines; keep their shape.
        let mut out = std::io::stdout().lock();
        writeln!(out, "runner: listening on http://{addr}")?;
        writeln!(
            out,
            "runner: bearer token {token} (in {})",
            args.data_dir.join("token").display()
        )?;
        writeln!(
            out,
            "runner: training on {}; {} job(s) resumed",
            executor.device_name(),
            requeued.len()
        )?;
        out.flush()?;
    }

    let stopping = executor.clone();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            tracing::info!("shutting down: running jobs checkpoint and resume on the next start");
            stopping.shutdown();
        })
        .await?;
    executor.shutdown();
    for worker in workers {
        if tokio::time::timeout(Duration::from_secs(120), worker)
            .await
            .is_err()
        {
            tracing::warn!(
                "a job did not checkpoint within 2 minutes; it resumes from its previous checkpoint"
            );
        }
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
