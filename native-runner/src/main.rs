//! `runner`: parses flags and starts the service (see the `runner` library).

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "runner=info,tower_http=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    runner::run(runner::Args::parse()).await
}
