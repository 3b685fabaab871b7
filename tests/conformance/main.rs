//! The conformance suite: one set of black-box HTTP tests, run against every storage
//! backend. Each test is `#[per_backend] pub async fn name(backend: Backend)` in a module
//! below, and runs as `module::name::sqlite` and `module::name::postgres` (PostgreSQL
//! when `TOKENGATE_TEST_PG_URL` names a server; else it says why it skips).

#[path = "../common/mod.rs"]
mod common;
#[path = "../common/soft_passkey.rs"]
mod soft_passkey;

mod accounts;
mod admin;
mod clients;
mod conventions;
mod cookies;
mod forward_auth;
mod hostile;
mod limits;
mod login;
mod logout;
mod mfa;
mod oidc;
mod passkeys;
mod prefix;
mod recovery;
mod refresh;
mod restart;
mod sessions;
mod signing_keys;
mod token_attacks;
mod tutorial;
