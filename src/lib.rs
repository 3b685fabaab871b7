//! tokengate: a JWT authentication server.
//!
//! `http` calls `auth`; `auth` calls `crypto`, `store`; nothing calls back up.
//! See ARCHITECTURE.md.

pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod events;
pub mod fanout;
/// Entry points for the `cargo fuzz` targets in `fuzz/` (built only under `--cfg fuzzing`).
#[cfg(fuzzing)]
pub mod fuzzing;
pub mod http;
pub mod limits;
pub mod mail;
pub mod metrics;
pub mod server;
pub mod store;
pub mod telemetry;

pub use http::{AppState, router as app};
