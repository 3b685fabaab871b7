//! The applications registered with the OAuth2 / OpenID Connect provider
//! (`/admin/clients`): admin only, a confidential client's secret shown once and stored
//! hashed, redirect URIs checked, changes and removal.

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokengate_test_macros::per_backend;

use crate::common::{Backend, TestServer};

async fn body(res: reqwest::Response) -> (StatusCode, Value) {
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[per_backend]
pub async fn an_admin_registers_changes_and_removes_an_application(b: Backend) {
    let srv = TestServer::start(b).await;
    let admin = srv.admin("ada").await;
    let user = srv.user("bob").await;
    let grafana = json!({
        "name": "Grafana",
        "redirect_uris": ["https://grafana.example.com/login/generic_oauth", "https://grafana.example.com/login/generic_oauth"],
        "trusted": true
    });
    // Admins only.
    let (status, _) = body(
        srv.post_auth("/admin/clients", &user.access, Some(grafana.clone()))
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        srv.get_auth("/admin/clients", &user.access).await.status(),
        StatusCode::FORBIDDEN
    );
    let (status, created) = body(srv.post_auth("/admin/clients", &admin.access, Some(grafana)).await).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["client_id"].as_str().unwrap().to_owned();
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    assert!(secret.len() >= 43, "{secret}");
    assert_eq!(created["public"], false);
    assert_eq!(created["trusted"], true);
    assert_eq!(created["scopes"], json!(["openid", "profile", "email"]));
    // Each URI once.
    assert_eq!(created["redirect_uris"].as_array().unwrap().len(), 1);
    // The secret is shown once: never read back, stored only as its hash.
    let (status, read) = body(srv.get_auth(&format!("/admin/clients/{id}"), &admin.access).await).await;
    assert_eq!(status, StatusCode::OK);
    assert!(read.get("client_secret").is_none(), "{read}");
    let stored = srv.store().await.client(id.parse().unwrap()).await.unwrap().unwrap();
    let hash = stored.secret_hash.unwrap();
    assert_eq!(
        hash,
        tokengate::crypto::tokens::ClientSecretHash::of_presented(&secret).unwrap()
    );
    assert_ne!(hash.as_str(), secret);
    // A public one, a second later: no secret.
    srv.clock.advance(1);
    let spa = json!({"name": "SPA", "redirect_uris": ["http://127.0.0.1:5173/cb"], "public": true, "scopes": ["openid", "read:orders"]});
    let (status, public) = body(srv.post_auth("/admin/clients", &admin.access, Some(spa)).await).await;
    assert_eq!(status, StatusCode::CREATED, "{public}");
    assert!(public.get("client_secret").is_none());
    assert_eq!(public["public"], true);
    let (_, list) = body(srv.get_auth("/admin/clients", &admin.access).await).await;
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Grafana", "SPA"]);
    // Change: the fields given.
    let res = srv
        .patch_auth(
            &format!("/admin/clients/{id}"),
            &admin.access,
            json!({"name": "Grafana (prod)", "trusted": false, "audience": "grafana"}),
        )
        .await;
    let (status, changed) = body(res).await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(
        (&changed["name"], &changed["trusted"], &changed["audience"]),
        (&json!("Grafana (prod)"), &json!(false), &json!("grafana"))
    );
    assert_eq!(changed["redirect_uris"], created["redirect_uris"]);
    let res = srv
        .patch_auth(&format!("/admin/clients/{id}"), &admin.access, json!({"audience": ""}))
        .await;
    assert_eq!(body(res).await.1["audience"], Value::Null);
    // A new secret: the old one is no longer what is stored.
    let rotated = srv.auth().rotate_client_secret(id.parse().unwrap()).await.unwrap();
    let stored = srv.store().await.client(id.parse().unwrap()).await.unwrap().unwrap();
    assert_eq!(
        stored.secret_hash.unwrap(),
        tokengate::crypto::tokens::ClientSecretHash::of_presented(&rotated).unwrap()
    );
    assert_ne!(rotated, secret);
    let public_id = public["client_id"].as_str().unwrap().parse().unwrap();
    assert!(matches!(
        srv.auth().rotate_client_secret(public_id).await,
        Err(tokengate::auth::AuthError::PublicClient)
    ));
    // Removal.
    let res = srv.delete_auth(&format!("/admin/clients/{id}"), &admin.access).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = srv.delete_auth(&format!("/admin/clients/{id}"), &admin.access).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        srv.get_auth(&format!("/admin/clients/{id}"), &admin.access)
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
}

#[per_backend]
pub async fn bad_registrations_are_a_422_naming_the_field(b: Backend) {
    let srv = TestServer::start(b).await;
    let admin = srv.admin("ada").await;
    let cases = [
        (json!({"name": "x"}), "redirect_uris"),
        (json!({"name": "x", "redirect_uris": []}), "redirect_uris"),
        (
            json!({"name": "x", "redirect_uris": ["http://app.example.com/cb"]}),
            "redirect_uris",
        ),
        (
            json!({"name": "x", "redirect_uris": ["https://app.example.com/cb#f"]}),
            "redirect_uris",
        ),
        (
            json!({"name": "x", "redirect_uris": ["https://u:p@app.example.com/cb"]}),
            "redirect_uris",
        ),
        (
            json!({"name": "x", "redirect_uris": ["javascript:alert(1)"]}),
            "redirect_uris",
        ),
        (json!({"name": "", "redirect_uris": ["https://a.example/cb"]}), "name"),
        (
            json!({"name": "x", "redirect_uris": ["https://a.example/cb"], "scopes": ["two words"]}),
            "scopes",
        ),
        (
            json!({"name": "x", "redirect_uris": ["https://a.example/cb"], "secret": "mine"}),
            "secret",
        ),
        (
            json!({"name": "x", "redirect_uris": ["https://a.example/cb"], "scopes": []}),
            "scopes",
        ),
        // Not as a parser writes it back: what it means is not what anyone reads.
        (
            json!({"name": "x", "redirect_uris": ["https://a.example"]}),
            "normal form",
        ),
        (
            json!({"name": "x", "redirect_uris": ["https://evil.example\\@a.example/"]}),
            "normal form",
        ),
        (
            json!({"name": "x", "redirect_uris": ["https://a.example/cb\r\nSet-Cookie: x=1"]}),
            "normal form",
        ),
        (
            json!({"name": "x", "redirect_uris": ["http://127.0.0.1\\@evil.example/"]}),
            "normal form",
        ),
    ];
    for (request, field) in cases {
        let (status, v) = body(
            srv.post_auth("/admin/clients", &admin.access, Some(request.clone()))
                .await,
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{request}: {v}");
        assert!(v.to_string().contains(field), "{request}: {v}");
    }
    let (_, list) = body(srv.get_auth("/admin/clients", &admin.access).await).await;
    assert_eq!(list, json!([]));
    let res = srv
        .patch_auth(
            &format!("/admin/clients/{}", uuid::Uuid::new_v4()),
            &admin.access,
            json!({"name": "x"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[per_backend]
pub async fn two_changes_at_once_to_different_fields_both_stand(b: Backend) {
    let srv = TestServer::start(b).await;
    let admin = srv.admin("ada").await;
    let app = json!({"name": "App", "redirect_uris": ["https://a.example/cb"]});
    let (_, created) = body(srv.post_auth("/admin/clients", &admin.access, Some(app)).await).await;
    let path = format!("/admin/clients/{}", created["client_id"].as_str().unwrap());
    for i in 0..10 {
        let name = format!("App {i}");
        let uri = format!("https://a.example/cb{i}");
        let (a, b) = tokio::join!(
            srv.patch_auth(&path, &admin.access, json!({"name": name})),
            srv.patch_auth(&path, &admin.access, json!({"redirect_uris": [uri]}))
        );
        assert_eq!((a.status(), b.status()), (StatusCode::OK, StatusCode::OK));
        let (_, now) = body(srv.get_auth(&path, &admin.access).await).await;
        assert_eq!(
            (&now["name"], &now["redirect_uris"]),
            (&json!(name), &json!([uri])),
            "{now}"
        );
    }
}
