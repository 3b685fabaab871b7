//! tokengate as an OAuth2 / OpenID Connect provider: the applications registered with
//! it (clients).

mod clients;

pub use clients::{ClientChange, ClientRegistration, ClientView, RegisteredClient, parse_audience};
