//! The applications registered with the OAuth2 / OpenID Connect provider, through the
//! operator's interface (the CLI's): a confidential client's secret shown once and
//! stored hashed, public clients, changes (two at once both stand) and removal.

use tokengate::auth::AuthError;
use tokengate::auth::oauth::{ClientChange, ClientRegistration};
use tokengate::crypto::tokens::ClientSecretHash;
use tokengate::domain::{ClientName, RedirectUri, Scope};
use tokengate_test_macros::per_backend;

use crate::common::{Backend, TestServer};

fn uri(u: &str) -> RedirectUri {
    RedirectUri::parse(u).unwrap()
}

fn registration(name: &str, uris: &[&str]) -> ClientRegistration {
    ClientRegistration {
        name: ClientName::parse(name).unwrap(),
        redirect_uris: uris.iter().map(|u| uri(u)).collect(),
        post_logout_redirect_uris: Vec::new(),
        scopes: None,
        public: false,
        trusted: false,
        audience: None,
    }
}

#[per_backend]
pub async fn an_operator_registers_changes_and_removes_an_application(b: Backend) {
    let srv = TestServer::start(b).await;
    let auth = srv.auth();
    let grafana = "https://grafana.example.com/login/generic_oauth";
    let mut r = registration("Grafana", &[grafana, grafana]);
    r.trusted = true;
    let done = auth.register_client(r).await.unwrap();
    let secret = done.secret.clone().expect("a confidential client's secret");
    assert!(secret.len() >= 43, "{secret}");
    let id = done.client.id;
    assert!(!done.client.public && done.client.trusted);
    // Each URI once; the default scopes.
    assert_eq!(done.client.redirect_uris, [uri(grafana)]);
    let scopes: Vec<&str> = done.client.scopes.iter().map(Scope::as_str).collect();
    assert_eq!(scopes, ["openid", "profile", "email"]);
    // The secret is stored only as its hash.
    let stored = srv.store().await.client(id).await.unwrap().unwrap();
    let hash = stored.secret_hash.unwrap();
    assert_eq!(hash, ClientSecretHash::of_presented(&secret).unwrap());
    assert_ne!(hash.as_str(), secret);
    // A public one, a second later: no secret.
    srv.clock.advance(1);
    let mut spa = registration("SPA", &["http://127.0.0.1:5173/cb"]);
    spa.public = true;
    spa.scopes = Some(vec![
        Scope::parse("openid").unwrap(),
        Scope::parse("read:orders").unwrap(),
    ]);
    let public = auth.register_client(spa).await.unwrap();
    assert!(public.secret.is_none() && public.client.public);
    let names: Vec<String> = auth
        .clients()
        .await
        .unwrap()
        .iter()
        .map(|c| c.name.as_str().to_owned())
        .collect();
    assert_eq!(names, ["Grafana", "SPA"]);
    // Change: the fields given.
    let changed = auth
        .change_client(
            id,
            ClientChange {
                name: Some(ClientName::parse("Grafana (prod)").unwrap()),
                trusted: Some(false),
                audience: Some(Some("grafana".into())),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (changed.name.as_str(), changed.trusted, changed.audience.as_deref()),
        ("Grafana (prod)", false, Some("grafana"))
    );
    assert_eq!(changed.redirect_uris, [uri(grafana)]);
    let reset = ClientChange {
        audience: Some(None),
        ..Default::default()
    };
    assert_eq!(auth.change_client(id, reset).await.unwrap().audience, None);
    // Empty lists are refused, nothing written.
    let empty = ClientChange {
        redirect_uris: Some(Vec::new()),
        ..Default::default()
    };
    assert!(matches!(
        auth.change_client(id, empty).await,
        Err(AuthError::NoRedirectUri)
    ));
    let no_scope = ClientChange {
        scopes: Some(Vec::new()),
        ..Default::default()
    };
    assert!(matches!(
        auth.change_client(id, no_scope).await,
        Err(AuthError::NoScope)
    ));
    // A new secret: the old one is no longer what is stored.
    let rotated = auth.rotate_client_secret(id).await.unwrap();
    let stored = srv.store().await.client(id).await.unwrap().unwrap();
    assert_eq!(
        stored.secret_hash.unwrap(),
        ClientSecretHash::of_presented(&rotated).unwrap()
    );
    assert_ne!(rotated, secret);
    assert!(matches!(
        auth.rotate_client_secret(public.client.id).await,
        Err(AuthError::PublicClient)
    ));
    // Removal.
    auth.delete_client(id).await.unwrap();
    assert!(matches!(auth.delete_client(id).await, Err(AuthError::NotFound)));
    assert!(matches!(auth.client(id).await, Err(AuthError::NotFound)));
    // No redirect URI, or no scope: refused.
    assert!(matches!(
        auth.register_client(registration("x", &[])).await,
        Err(AuthError::NoRedirectUri)
    ));
    let mut none = registration("x", &["https://a.example/cb"]);
    none.scopes = Some(Vec::new());
    assert!(matches!(auth.register_client(none).await, Err(AuthError::NoScope)));
}

#[per_backend]
pub async fn two_changes_at_once_to_different_fields_both_stand(b: Backend) {
    let srv = TestServer::start(b).await;
    let auth = srv.auth();
    let id = auth
        .register_client(registration("App", &["https://a.example/cb"]))
        .await
        .unwrap()
        .client
        .id;
    for i in 0..10 {
        let name = format!("App {i}");
        let new_uri = uri(&format!("https://a.example/cb{i}"));
        let by_name = ClientChange {
            name: Some(ClientName::parse(&name).unwrap()),
            ..Default::default()
        };
        let by_uri = ClientChange {
            redirect_uris: Some(vec![new_uri.clone()]),
            ..Default::default()
        };
        let (a, b) = tokio::join!(auth.change_client(id, by_name), auth.change_client(id, by_uri));
        assert!(a.is_ok() && b.is_ok());
        let now = auth.client(id).await.unwrap();
        assert_eq!((now.name.as_str(), now.redirect_uris), (name.as_str(), vec![new_uri]));
    }
}
