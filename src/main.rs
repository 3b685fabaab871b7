//! The `tokengate` binary: parse the command line, set up logging, dispatch.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser as _;
use tokengate::cli::{Cli, Command};
use tokengate::clock::SystemClock;
use tokengate::config::environment;
use tokengate::server::{self, StartError};

fn main() -> ExitCode {
    // `.env` fills in what the environment does not already set.
    let mut warnings = environment::load_dotenv();
    warnings.extend(environment::check_environment());
    let cli = Cli::parse();
    let raw = match cli.command.settings() {
        Ok(raw) => raw,
        Err(e) => e.exit(),
    };
    let settings = match raw.validate() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let serving = matches!(cli.command, Command::Serve(_));
    // Operator commands print their result, not the server's INFO lines.
    let default_level = if serving { "info" } else { "warn" };
    let telemetry = match tokengate::telemetry::init(
        settings.log_format,
        default_level,
        settings.otlp_endpoint.as_deref().filter(|_| serving),
    ) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    for w in &warnings {
        tracing::warn!("{w}");
    }
    if matches!(cli.command, Command::Healthcheck { .. }) {
        let addr = tokengate::cli::healthcheck::target(settings.http.bind);
        return match tokengate::cli::healthcheck::check(addr, &settings.http.path_prefix) {
            Ok(line) => {
                println!("{line}");
                ExitCode::SUCCESS
            }
            Err(why) => {
                eprintln!("{why}");
                ExitCode::from(1)
            }
        };
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
            Command::Serve(_) => server::serve(settings, Arc::new(SystemClock)).await.map(|()| None),
            Command::Migrate(_) => server::open_store(&settings, server::OpenMode::CreateIfMissing)
                .await
                .map(|_| Some("database schema is up to date".to_owned())),
            Command::User { command, .. } => tokengate::cli::run_user(&settings, command).await.map(Some),
            Command::Keys { command, .. } => tokengate::cli::run_keys(&settings, command).await.map(Some),
            Command::Mail { command, .. } => tokengate::cli::run_mail(&settings, command).await.map(Some),
            Command::Client { command, .. } => tokengate::cli::run_client(&settings, command).await.map(Some),
            Command::Healthcheck { .. } => Ok(None),
        }
    });
    // Outside the runtime's context: the exporter's client blocks while it flushes.
    drop(telemetry);
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
