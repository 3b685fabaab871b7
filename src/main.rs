//! The `tokengate` binary: parse the command line, set up logging, dispatch.

use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser as _;
use tokengate::cli::{Cli, Command};
use tokengate::clock::SystemClock;
use tokengate::config::{LogFormat, environment};
use tokengate::server::{self, StartError};

fn main() -> ExitCode {
    // `.env` fills in what the environment does not already set.
    let mut warnings = environment::load_dotenv();
    warnings.extend(environment::check_environment());
    let cli = Cli::parse();
    let settings = match cli.settings.validate() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    // Operator commands print their result, not the server's INFO lines.
    let default_level = if matches!(cli.command, Command::Serve) {
        "info"
    } else {
        "warn"
    };
    init_logging(settings.log_format, default_level);
    for w in &warnings {
        tracing::warn!("{w}");
    }
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
            Command::Migrate => server::open_store(&settings, server::OpenMode::CreateIfMissing)
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

fn init_logging(format: LogFormat, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TOKENGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Pretty => builder.init(),
    }
}
