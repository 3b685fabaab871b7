//! The `tokengate` binary: parse the command line, set up logging, dispatch.

use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser as _;
use tokengate::cli::{Cli, Command};
use tokengate::clock::SystemClock;
use tokengate::config::LogFormat;
use tokengate::server::{self, StartError};

fn main() -> ExitCode {
    // `.env` fills in what the environment does not already set.
    let _ = dotenvy::dotenv();
    let cli = Cli::parse();
    let settings = match cli.settings.validate() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(settings.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve => server::serve(settings, Arc::new(SystemClock)).await.map(|()| None),
            Command::Migrate => server::open_store(&settings)
                .await
                .map(|_| Some("database schema is up to date".to_owned())),
            Command::User(cmd) => tokengate::cli::run_user(&settings, cmd).await.map(Some),
            Command::Keys(cmd) => tokengate::cli::run_keys(&settings, cmd).await.map(Some),
        }
    });
    match result {
        Ok(out) => {
            if let Some(text) = out {
                println!("{text}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(match &e {
                StartError::Config(_) | StartError::Runtime(_) => e.exit_code(),
            })
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TOKENGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Pretty => builder.init(),
    }
}
