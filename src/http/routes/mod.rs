//! Route handlers, one file per area. Each extracts, calls the service, maps, and
//! exports its own `router()`: the routes and their OpenAPI description in one place.

pub mod account;
pub mod admin;
pub mod auth;
pub mod clients;
pub mod cookie;
pub mod discovery;
pub mod docs;
pub mod forward_auth;
pub mod health;
pub mod me;
pub mod metrics;
pub mod mfa;
pub mod oauth;
pub mod oauth_pages;
pub mod passkeys;
pub mod recovery;
pub mod sessions;
mod step_up;
mod user_read;

use axum::Router;
use axum::routing::{MethodRouter, get, post};
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use super::AppState;
use super::openapi::ApiDoc;
pub use user_read::UserRead;

/// Every documented route, with the document describing them.
pub fn api() -> OpenApiRouter<AppState> {
    use utoipa::OpenApi as _;
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(auth::router())
        .merge(recovery::router())
        .merge(mfa::router())
        .merge(passkeys::router())
        .merge(oauth::router())
        .merge(cookie::router())
        .merge(sessions::router())
        .merge(me::router())
        .merge(admin::router())
        .merge(clients::router())
        .merge(discovery::router())
        .merge(health::router())
        .merge(forward_auth::router())
}

/// The FastAPI security tutorial's URLs, served as ours so a frontend written against it
/// keeps them: its `tokenUrl` (`POST /token`) and `GET /users/me`. Each is added to the
/// routes and to the document (a copy of the route it stands for, with its own operation id).
pub fn with_tutorial_aliases(mut router: Router<AppState>, doc: &mut OpenApi) -> Router<AppState> {
    let aliases: [(&str, &str, &str, MethodRouter<AppState>); 2] = [
        ("/token", "/auth/login", "token", post(auth::login)),
        ("/users/me", "/me", "users_me", get(me::me)),
    ];
    for (alias, ours, operation_id, handler) in aliases {
        router = router.route(alias, handler);
        let Some(mut item) = doc.paths.paths.get(ours).cloned() else {
            continue;
        };
        for op in [&mut item.get, &mut item.post].into_iter().flatten() {
            op.operation_id = Some(operation_id.to_owned());
            let also = format!("The FastAPI tutorial's URL for `{ours}` (the same route).");
            op.description = Some(match op.description.take() {
                Some(d) => format!("{d}\n\n{also}"),
                None => also,
            });
        }
        doc.paths.paths.insert(alias.to_owned(), item);
    }
    router
}
