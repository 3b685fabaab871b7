//! The applications registered with the OAuth2 / OpenID Connect provider, through the
//! operator's interface (the CLI's): a confidential client's secret shown once and
//! stored hashed, public clients, changes (two at once both stand) and removal; and the
//! same over `/admin/clients` (admins only).

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokengate::auth::AuthError;
use tokengate::auth::oauth::{ClientChange, ClientRegistration};
use tokengate::crypto::tokens::ClientSecretHash;
use tokengate::domain::{ClientName, RedirectUri, Scope};
use tokengate_test_macros::per_backend;

use crate::common::{AUDIENCE, Backend, TestServer};

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

/// Introspection with this secret: whether the provider takes it as the client's.
async fn secret_works(srv: &TestServer, client_id: &str, secret: &str) -> bool {
    let res = srv
        .http
        .post(srv.url("/oauth/introspect"))
        .basic_auth(client_id, Some(secret))
        .form(&[("token", "nonsense")])
        .send()
        .await
        .unwrap();
    match res.status() {
        StatusCode::OK => true,
        StatusCode::UNAUTHORIZED => false,
        other => panic!("introspection answered {other}"),
    }
}

async fn problems(res: reqwest::Response) -> Vec<(Value, String)> {
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = res.json().await.unwrap();
    body["detail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["loc"].clone(), d["type"].as_str().unwrap().to_owned()))
        .collect()
}

#[per_backend]
pub async fn admins_manage_applications_over_http(b: Backend) {
    let srv = TestServer::start(b).await;
    let admin = srv.admin("root").await;
    let plain = srv.user("plain").await;
    let unknown = "0195f000-0000-7000-8000-000000000000";
    // Admins only: a user gets 403 everywhere, nobody 401.
    let body = json!({"name": "X", "redirect_uris": ["https://x.example/cb"]});
    for res in [
        srv.get_auth("/admin/clients", &plain.access).await,
        srv.post_auth("/admin/clients", &plain.access, Some(body.clone())).await,
        srv.get_auth(&format!("/admin/clients/{unknown}"), &plain.access).await,
        srv.patch_auth(
            &format!("/admin/clients/{unknown}"),
            &plain.access,
            json!({"trusted": true}),
        )
        .await,
        srv.delete_auth(&format!("/admin/clients/{unknown}"), &plain.access)
            .await,
        srv.post_auth(&format!("/admin/clients/{unknown}/rotate-secret"), &plain.access, None)
            .await,
    ] {
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
    }
    let res = srv.http.get(srv.url("/admin/clients")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // Register a confidential client: the secret once, and it works.
    let res = srv
        .post_auth(
            "/admin/clients",
            &admin.access,
            Some(json!({
                "name": "Grafana",
                "redirect_uris": ["https://grafana.example.com/login/generic_oauth"],
                "post_logout_redirect_uris": ["https://grafana.example.com/"],
                "scopes": ["openid", "email"],
                "trusted": true,
                "audience": "https://grafana.example.com",
            })),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let created: Value = res.json().await.unwrap();
    let id = created["client_id"].as_str().unwrap().to_owned();
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(
        (
            &created["public"],
            &created["trusted"],
            &created["scopes"],
            &created["audience"]
        ),
        (
            &json!(false),
            &json!(true),
            &json!(["openid", "email"]),
            &json!("https://grafana.example.com")
        )
    );
    assert!(secret_works(&srv, &id, &secret).await);
    assert!(!secret_works(&srv, &id, "not-the-secret").await);
    // A public one, a second later: no secret.
    srv.clock.advance(1);
    let res = srv
        .post_auth(
            "/admin/clients",
            &admin.access,
            Some(json!({"name": "SPA", "redirect_uris": ["http://127.0.0.1:5173/cb"], "public": true})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED);
    let spa: Value = res.json().await.unwrap();
    assert!(spa.get("client_secret").is_none(), "{spa}");
    assert_eq!(spa["scopes"], json!(["openid", "profile", "email"]));
    let spa_id = spa["client_id"].as_str().unwrap().to_owned();
    // Another app's client_id is its default audience: never another's audience. An
    // app's own id is.
    let res = srv
        .patch_auth(
            &format!("/admin/clients/{id}"),
            &admin.access,
            json!({"audience": spa_id}),
        )
        .await;
    assert_eq!(problems(res).await[0].0, json!(["body", "audience"]));
    let res = srv
        .post_auth(
            "/admin/clients",
            &admin.access,
            Some(json!({"name": "B", "redirect_uris": ["https://b.example/cb"], "audience": spa_id})),
        )
        .await;
    assert_eq!(problems(res).await[0].0, json!(["body", "audience"]));
    let res = srv
        .patch_auth(&format!("/admin/clients/{id}"), &admin.access, json!({"audience": id}))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = srv
        .patch_auth(
            &format!("/admin/clients/{id}"),
            &admin.access,
            json!({"audience": "https://grafana.example.com"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    // Refusals name the field; nothing is registered.
    let bad = [
        (
            json!({"name": "A", "redirect_uris": ["https://a.example"]}),
            json!(["body", "redirect_uris", 0]),
        ),
        (
            json!({"name": "A", "redirect_uris": ["https://a.example/#x"]}),
            json!(["body", "redirect_uris", 0]),
        ),
        (
            json!({"name": "A", "redirect_uris": ["javascript:alert(1)"]}),
            json!(["body", "redirect_uris", 0]),
        ),
        (json!({"name": "A"}), json!(["body", "redirect_uris"])),
        (
            json!({"name": "", "redirect_uris": ["https://a.example/"]}),
            json!(["body", "name"]),
        ),
        (
            json!({"name": "A", "redirect_uris": ["https://a.example/"], "secret": "x"}),
            json!(["body", "secret"]),
        ),
        (
            json!({"name": "A", "redirect_uris": ["https://a.example/"], "scopes": ["a b"]}),
            json!(["body", "scopes", 0]),
        ),
        (
            json!({"name": "A", "redirect_uris": []}),
            json!(["body", "redirect_uris"]),
        ),
        (
            json!({"name": "A", "redirect_uris": ["https://a.example/"], "audience": AUDIENCE}),
            json!(["body", "audience"]),
        ),
    ];
    for (body, loc) in bad {
        let res = srv.post_auth("/admin/clients", &admin.access, Some(body.clone())).await;
        let got = problems(res).await;
        assert!(got.iter().any(|(l, _)| *l == loc), "{body}: {got:?}");
    }
    let all: Vec<Value> = srv
        .get_auth("/admin/clients", &admin.access)
        .await
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = all.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Grafana", "SPA"]);
    assert!(all.iter().all(|c| c.get("client_secret").is_none()));
    // One, and unknown or malformed ids.
    let one: Value = srv
        .get_auth(&format!("/admin/clients/{id}"), &admin.access)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        one["redirect_uris"],
        json!(["https://grafana.example.com/login/generic_oauth"])
    );
    for missing in [unknown, "not-an-id"] {
        let res = srv.get_auth(&format!("/admin/clients/{missing}"), &admin.access).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{missing}");
    }
    // Change: the fields given; an empty audience goes back to the default.
    let res = srv
        .patch_auth(
            &format!("/admin/clients/{id}"),
            &admin.access,
            json!({"name": "Grafana (prod)", "trusted": false}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let changed: Value = res.json().await.unwrap();
    assert_eq!(
        (&changed["name"], &changed["trusted"], &changed["audience"]),
        (
            &json!("Grafana (prod)"),
            &json!(false),
            &json!("https://grafana.example.com")
        )
    );
    let res = srv
        .patch_auth(&format!("/admin/clients/{id}"), &admin.access, json!({"audience": ""}))
        .await;
    assert_eq!(res.json::<Value>().await.unwrap()["audience"], Value::Null);
    let res = srv
        .patch_auth(&format!("/admin/clients/{id}"), &admin.access, json!({"scopes": []}))
        .await;
    assert_eq!(problems(res).await[0].0, json!(["body", "scopes"]));
    let res = srv
        .patch_auth(
            &format!("/admin/clients/{unknown}"),
            &admin.access,
            json!({"trusted": true}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    // A new secret: shown once, the old one dead at once; a public client has none.
    let res = srv
        .post_auth(&format!("/admin/clients/{id}/rotate-secret"), &admin.access, None)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let rotated: Value = res.json().await.unwrap();
    let new_secret = rotated["client_secret"].as_str().unwrap();
    assert_eq!(rotated["client_id"], id.as_str());
    assert!(secret_works(&srv, &id, new_secret).await);
    assert!(!secret_works(&srv, &id, &secret).await);
    let res = srv
        .post_auth(&format!("/admin/clients/{spa_id}/rotate-secret"), &admin.access, None)
        .await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    // Removal: gone, and its secret with it.
    let res = srv.delete_auth(&format!("/admin/clients/{id}"), &admin.access).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = srv.delete_auth(&format!("/admin/clients/{id}"), &admin.access).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = srv.get_auth(&format!("/admin/clients/{id}"), &admin.access).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert!(!secret_works(&srv, &id, new_secret).await);
}
