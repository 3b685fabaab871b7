//! `tokengate client create|list|delete|rotate-secret`: the applications registered
//! with the OAuth2 / OpenID Connect provider.

use std::sync::Arc;

use super::ClientCommand;
use crate::auth::oauth::{ClientRegistration, parse_audience};
use crate::clock::SystemClock;
use crate::config::Settings;
use crate::domain::{ClientId, ClientName, RedirectUri, Scope};
use crate::server::{OpenMode, Purpose, StartError, build_auth};

fn refused(what: &str, value: &str, why: &str) -> StartError {
    StartError::Runtime(format!("{what} {value:?}: {why}"))
}

fn each<T>(
    what: &str,
    values: &[String],
    parse: impl Fn(&str) -> Result<T, &'static str>,
) -> Result<Vec<T>, StartError> {
    values
        .iter()
        .map(|v| parse(v).map_err(|why| refused(what, v, why)))
        .collect()
}

fn client_id(raw: &str) -> Result<ClientId, StartError> {
    raw.parse()
        .map_err(|_| StartError::Runtime(format!("{raw:?} is not a client_id (see `client list`)")))
}

/// Run one `client` subcommand; the text to print on success.
pub async fn run(settings: &Settings, cmd: ClientCommand) -> Result<String, StartError> {
    let auth = build_auth(settings, Arc::new(SystemClock), OpenMode::MustExist, Purpose::Operate).await?;
    let fail = |e: crate::auth::AuthError| StartError::Runtime(e.to_string());
    match cmd {
        ClientCommand::Create {
            name,
            redirect_uris,
            post_logout_redirect_uris,
            scopes,
            public,
            trusted,
            audience,
        } => {
            let registration = ClientRegistration {
                name: ClientName::parse(&name).map_err(|why| refused("--name", &name, why))?,
                redirect_uris: each("--redirect-uri", &redirect_uris, RedirectUri::parse)?,
                post_logout_redirect_uris: each(
                    "--post-logout-redirect-uri",
                    &post_logout_redirect_uris,
                    RedirectUri::parse,
                )?,
                scopes: if scopes.is_empty() {
                    None
                } else {
                    Some(each("--scope", &scopes, Scope::parse)?)
                },
                public,
                trusted,
                audience: audience
                    .map(|a| parse_audience(&a).map_err(|why| refused("--audience", &a, why)))
                    .transpose()?,
            };
            let done = auth.register_client(registration).await.map_err(fail)?;
            let mut out = format!("client_id: {}", done.client.id);
            match done.secret {
                Some(secret) => out.push_str(&format!(
                    "\nclient_secret: {secret}\n(shown this once: store it now; `client rotate-secret` makes a new one)"
                )),
                None => out.push_str("\npublic client: no secret (it uses PKCE)"),
            }
            Ok(out)
        }
        ClientCommand::List => {
            let all = auth.clients().await.map_err(fail)?;
            if all.is_empty() {
                return Ok("no clients".to_owned());
            }
            let rows = all.iter().map(|c| {
                vec![
                    c.id.to_string(),
                    c.name.as_str().to_owned(),
                    if c.public { "public" } else { "confidential" }.to_owned(),
                    if c.trusted { "yes" } else { "no" }.to_owned(),
                    c.scopes.iter().map(Scope::as_str).collect::<Vec<_>>().join(" "),
                    c.redirect_uris
                        .iter()
                        .map(RedirectUri::as_str)
                        .collect::<Vec<_>>()
                        .join(" "),
                ]
            });
            Ok(super::table::render(
                &["CLIENT_ID", "NAME", "TYPE", "TRUSTED", "SCOPES", "REDIRECT URIS"],
                &[36, 20, 12, 7, 24],
                rows,
            ))
        }
        ClientCommand::Delete { client_id: id } => {
            auth.delete_client(client_id(&id)?).await.map_err(fail)?;
            Ok(format!("client {id} deleted"))
        }
        ClientCommand::RotateSecret { client_id: id } => {
            let secret = auth.rotate_client_secret(client_id(&id)?).await.map_err(fail)?;
            Ok(format!(
                "client_secret: {secret}\n(shown this once; the previous secret no longer works)"
            ))
        }
    }
}
