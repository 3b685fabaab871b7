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
    let telemetry = tokengate::telemetry::init(
        settings.log_format,
        default_level,
        settings
            .otlp_endpoint
            .as_deref()
            .filter(|_| matches!(cli.command, Command::Serve)),
    );
    for w in &warnings {
        tracing::warn!("{w}");
    }
    if matches!(cli.command, Command::Healthcheck) {
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
            Command::Serve => server::serve(settings, Arc::new(SystemClock)).await.map(|()| None),
            Command::Migrate => server::open_store(&settings, server::OpenMode::CreateIfMissing)
                .await
                .map(|_| Some("database schema is up to date".to_owned())),
            Command::User(cmd) => tokengate::cli::run_user(&settings, cmd).await.map(Some),
            Command::Keys(cmd) => tokengate::cli::run_keys(&settings, cmd).await.map(Some),
            Command::Healthcheck => Ok(None),
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
