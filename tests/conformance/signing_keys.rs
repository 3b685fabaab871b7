//! Asymmetric signing: EdDSA, ES256, RS256 tokens, the JWKS, rotation overlap,
//! retirement, and the attacks on key selection (algorithm confusion, forged kid,
//! jku / jwk headers).

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokengate::crypto::keygen;
use tokengate::crypto::keys::SigningAlgorithm;
use tokengate_test_macros::per_backend;

use crate::common::{AUDIENCE, Backend, ISSUER, PASSWORD, TEST_SECRET, TestServer, assert_invalid_token, jwt_parts};

const ASYMMETRIC: [(SigningAlgorithm, &str); 3] = [
    (SigningAlgorithm::EdDsa, "EdDSA"),
    (SigningAlgorithm::Es256, "ES256"),
    (SigningAlgorithm::Rs256, "RS256"),
];

async fn server(b: Backend, alg: SigningAlgorithm) -> TestServer {
    TestServer::start_with(b, |s| {
        s.tokens.algorithm = Some(alg);
        s.tokens.secret_key = None;
    })
    .await
}

/// Verify `token` the way another service would: fetch the JWKS, pick the key by kid,
/// check iss, aud and exp with `jsonwebtoken`.
async fn verify_via_jwks(srv: &TestServer, token: &str) -> Result<Value, jsonwebtoken::errors::Error> {
    let set: JwkSet = serde_json::from_value(srv.get_json("/.well-known/jwks.json").await).unwrap();
    let header = jsonwebtoken::decode_header(token)?;
    let kid = header.kid.unwrap_or_default();
    let jwk = set
        .find(&kid)
        .ok_or(jsonwebtoken::errors::ErrorKind::InvalidKeyFormat)?;
    let key = DecodingKey::from_jwk(jwk)?;
    let alg = jwk.common.key_algorithm.map(|a| a.to_string()).unwrap_or_default();
    let mut v = Validation::new(alg.parse().unwrap_or(Algorithm::HS256));
    v.set_issuer(&[ISSUER]);
    v.set_audience(&[AUDIENCE]);
    jsonwebtoken::decode::<Value>(token, &key, &v).map(|d| d.claims)
}

/// Sign `claims` with a stored key of the server (as only the server could).
async fn sign_with_stored(srv: &TestServer, kid: &str, header: Header, claims: &Value) -> String {
    let keys = srv.store().await.signing_keys().await.unwrap();
    let k = keys.iter().find(|k| k.kid == kid).expect("stored key");
    let loaded = keygen::load(&k.kid, k.algorithm, &k.private_der).unwrap();
    loaded.signer.sign(&header, claims).unwrap()
}

#[per_backend]
pub async fn asymmetric_tokens_verify_through_the_jwks(b: Backend) {
    for (alg, name) in ASYMMETRIC {
        let srv = server(b, alg).await;
        let t = srv.user("alzy").await;
        let (header, claims) = jwt_parts(&t.access);
        assert_eq!(header["alg"], name);
        assert_eq!(header["typ"], "JWT");
        let kid = header["kid"].as_str().unwrap();
        assert_eq!(claims["type"], "access");
        assert_eq!(srv.me_status(&t.access).await, StatusCode::OK);

        let res = srv.http.get(srv.url("/.well-known/jwks.json")).send().await.unwrap();
        let cache = res.headers()["cache-control"].to_str().unwrap().to_owned();
        let max_age: u64 = cache.rsplit('=').next().unwrap().parse().unwrap();
        assert!(
            cache.starts_with("public") && max_age <= 300 && max_age < 900,
            "{cache}"
        );
        let jwks: Value = res.json().await.unwrap();
        let keys = jwks["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 1);
        let k = &keys[0];
        assert_eq!(
            (k["kid"].as_str(), k["alg"].as_str(), k["use"].as_str()),
            (Some(kid), Some(name), Some("sig"))
        );
        match alg {
            SigningAlgorithm::EdDsa => {
                assert_eq!((k["kty"].as_str(), k["crv"].as_str()), (Some("OKP"), Some("Ed25519")))
            }
            SigningAlgorithm::Es256 => {
                assert_eq!((k["kty"].as_str(), k["crv"].as_str()), (Some("EC"), Some("P-256")));
                assert!(k["y"].is_string());
            }
            _ => {
                assert_eq!(k["kty"], "RSA");
                assert_eq!(k["e"], "AQAB");
                assert!(k["n"].as_str().unwrap().len() >= 342, "2048-bit modulus");
            }
        }
        for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            assert!(k.get(private).is_none(), "{name} JWK leaks {private}");
        }
        let verified = verify_via_jwks(&srv, &t.access).await.expect("verifies via JWKS");
        assert_eq!(verified["sub"], claims["sub"]);
        // The secret file is an HS256 thing only.
        assert!(!tokengate::server::secret_path(&srv.db_path).exists());
    }
}

#[per_backend]
pub async fn rotation_keeps_old_tokens_valid_then_retires_the_key(b: Backend) {
    for (alg, _) in ASYMMETRIC {
        let srv = server(b, alg).await;
        let old = srv.user("alzy").await;
        let old_kid = jwt_parts(&old.access).0["kid"].as_str().unwrap().to_owned();
        srv.clock.advance(100);
        let new_kid = srv.rotate_keys().await;
        assert_ne!(new_kid, old_kid);
        // Published at once, signing only after the JWKS cache time (300 s here), so
        // verifiers that cache the JWKS know the key before its first token.
        let jwks = srv.get_json("/.well-known/jwks.json").await;
        assert!(
            jwks["keys"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["kid"] == new_kid.as_str())
        );
        let early = srv.login("alzy", PASSWORD).await;
        assert_eq!(jwt_parts(&early.access).0["kid"], old_kid.as_str());
        srv.clock.advance(300);
        let new = srv.login("alzy", PASSWORD).await;
        assert_eq!(jwt_parts(&new.access).0["kid"], new_kid.as_str());
        // Overlap: both verify, here and through the JWKS; both keys are published.
        for t in [&old, &new] {
            assert_eq!(srv.me_status(&t.access).await, StatusCode::OK);
            assert!(verify_via_jwks(&srv, &t.access).await.is_ok());
        }
        let kids = published_kids(&srv).await;
        assert_eq!(kids.len(), 2);
        assert!(kids.contains(&json!(old_kid)) && kids.contains(&json!(new_kid)));

        // One access lifetime after the new key took over, the retired key is gone: from
        // the JWKS, and for verification, even for a fresh token it would sign.
        srv.clock.advance(900);
        srv.auth().reload_keys().await.unwrap();
        let keys = srv.get_json("/.well-known/jwks.json").await;
        assert_eq!(keys["keys"].as_array().unwrap().len(), 1);
        assert_eq!(keys["keys"][0]["kid"], new_kid.as_str());
        let (_, mut claims) = jwt_parts(&new.access);
        let now = srv.clock.now_secs();
        claims["iat"] = json!(now);
        claims["nbf"] = json!(now);
        claims["exp"] = json!(now + 600);
        let mut h = Header::new(jsonwebtoken::decode_header(&old.access).unwrap().alg);
        h.kid = Some(old_kid.clone());
        let late = sign_with_stored(&srv, &old_kid, h, &claims).await;
        assert_invalid_token(srv.get_auth("/me", &late).await).await;
        let mut h = Header::new(jsonwebtoken::decode_header(&new.access).unwrap().alg);
        h.kid = Some(new_kid.clone());
        let control = sign_with_stored(&srv, &new_kid, h, &claims).await;
        assert_eq!(srv.me_status(&control).await, StatusCode::OK);
    }
}

#[per_backend]
pub async fn algorithm_confusion_is_refused(b: Backend) {
    for (alg, _) in ASYMMETRIC {
        let srv = server(b, alg).await;
        let t = srv.user("alzy").await;
        let (header, claims) = jwt_parts(&t.access);
        let kid = header["kid"].as_str().unwrap();
        let jwks = srv.get_json("/.well-known/jwks.json").await;
        let jwk = &jwks["keys"][0];
        // The public key, in every form an attacker could feed an HMAC.
        let mut candidates: Vec<Vec<u8>> = vec![jwk.to_string().into_bytes(), TEST_SECRET.as_bytes().to_vec()];
        for part in ["x", "y", "n", "e"] {
            if let Some(v) = jwk[part].as_str() {
                candidates.push(v.as_bytes().to_vec());
                candidates.push(base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, v).unwrap());
            }
        }
        for secret in candidates {
            for hs in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
                let mut h = Header::new(hs);
                h.kid = Some(kid.to_owned());
                let forged = jsonwebtoken::encode(&h, &claims, &EncodingKey::from_secret(&secret)).unwrap();
                assert_invalid_token(srv.get_auth("/me", &forged).await).await;
            }
        }
        // A genuine signature under a different declared algorithm.
        let other = if alg == SigningAlgorithm::Rs256 {
            Algorithm::PS256
        } else {
            Algorithm::RS256
        };
        let parts: Vec<&str> = t.access.split('.').collect();
        let relabelled = json!({"alg": format!("{other:?}"), "typ": "JWT", "kid": kid});
        let b64 = |v: &Value| base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, v.to_string());
        let token = format!("{}.{}.{}", b64(&relabelled), parts[1], parts[2]);
        assert_invalid_token(srv.get_auth("/me", &token).await).await;
        let none = json!({"alg": "none", "typ": "JWT", "kid": kid});
        assert_invalid_token(srv.get_auth("/me", &format!("{}.{}.", b64(&none), parts[1])).await).await;
    }
}

#[per_backend]
pub async fn forged_kid_jku_and_jwk_headers_are_refused(b: Backend) {
    let srv = server(b, SigningAlgorithm::EdDsa).await;
    let t = srv.user("alzy").await;
    let (header, claims) = jwt_parts(&t.access);
    let real_kid = header["kid"].as_str().unwrap().to_owned();
    // The attacker's own key pair.
    let (evil_kid, evil_der) = keygen::generate(SigningAlgorithm::EdDsa).unwrap();
    let evil = keygen::load(&evil_kid, SigningAlgorithm::EdDsa, &evil_der).unwrap();
    let evil_jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(evil.jwk.clone()).unwrap();
    let sign_evil = |h: &Header| evil.signer.sign(h, &claims).unwrap();

    let mut h = Header::new(Algorithm::EdDSA);
    h.kid = Some(evil_kid.clone());
    assert_invalid_token(srv.get_auth("/me", &sign_evil(&h)).await).await;
    h.kid = Some(real_kid.clone());
    assert_invalid_token(srv.get_auth("/me", &sign_evil(&h)).await).await;
    let mut h = Header::new(Algorithm::EdDSA);
    h.kid = Some(evil_kid.clone());
    h.jwk = Some(evil_jwk.clone());
    assert_invalid_token(srv.get_auth("/me", &sign_evil(&h)).await).await;
    h.jwk = None;
    h.jku = Some("http://127.0.0.1:9/jwks.json".into());
    assert_invalid_token(srv.get_auth("/me", &sign_evil(&h)).await).await;

    // Even a genuine signature is refused when the header carries key-locating fields.
    for (jku, jwk, x5u) in [
        (Some("http://127.0.0.1:9/jwks.json".to_owned()), None, None),
        (None, Some(evil_jwk.clone()), None),
        (None, None, Some("http://127.0.0.1:9/cert.pem".to_owned())),
    ] {
        let mut h = Header::new(Algorithm::EdDSA);
        h.kid = Some(real_kid.clone());
        h.jku = jku;
        h.jwk = jwk;
        h.x5u = x5u;
        let token = sign_with_stored(&srv, &real_kid, h, &claims).await;
        assert_invalid_token(srv.get_auth("/me", &token).await).await;
    }
    // Control: the same key, plain header, is fine.
    let mut h = Header::new(Algorithm::EdDSA);
    h.kid = Some(real_kid.clone());
    assert_eq!(
        srv.me_status(&sign_with_stored(&srv, &real_kid, h, &claims).await)
            .await,
        StatusCode::OK
    );
}

#[per_backend]
pub async fn hs256_publishes_no_key_and_discovery_describes_the_server(b: Backend) {
    let srv = TestServer::start(b).await;
    assert_eq!(srv.get_json("/.well-known/jwks.json").await, json!({"keys": []}));
    let conf = srv.get_json("/.well-known/openid-configuration").await;
    // The provider's issuer is its URL (OpenID Connect Discovery §4.3); access tokens
    // carry the configured one, said beside it.
    assert_eq!(conf["issuer"], srv.url(""));
    assert_eq!(conf["access_token_issuer"], ISSUER);
    assert_eq!(conf["access_token_signing_alg"], "HS256");
    assert_eq!(conf["id_token_signing_alg_values_supported"], json!(["RS256"]));
    assert!(conf["token_endpoint"].as_str().unwrap().ends_with("/oauth/token"));
    assert!(
        conf["grant_types_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("refresh_token"))
    );

    let ed = server(b, SigningAlgorithm::EdDsa).await;
    let conf = ed.get_json("/.well-known/openid-configuration").await;
    assert_eq!(conf["access_token_signing_alg"], "EdDSA");
    let jwks_uri = conf["jwks_uri"].as_str().unwrap();
    let fetched: Value = ed.http.get(jwks_uri).send().await.unwrap().json().await.unwrap();
    assert_eq!(fetched["keys"].as_array().unwrap().len(), 1);
}

#[per_backend]
pub async fn instances_on_one_database_share_keys_and_rotations(b: Backend) {
    let a = server(b, SigningAlgorithm::Es256).await;
    let mut settings = a.settings.clone();
    settings.tokens.algorithm = Some(SigningAlgorithm::Es256);
    let second = TestServer::start_settings(settings, a.clock.clone()).await;
    let t = a.user("alzy").await;
    assert_eq!(
        second.me_status(&t.access).await,
        StatusCode::OK,
        "B verifies A's token"
    );
    let old_kid = jwt_parts(&t.access).0["kid"].as_str().unwrap().to_owned();
    // A compromised key: `keys rotate --now` on A.
    let kid = a.rotate_keys_now().await;
    // B picks the rotation up at its next reload (every few seconds when serving).
    second.auth().reload_keys().await.unwrap();
    let t2 = second.login("alzy", PASSWORD).await;
    assert_eq!(jwt_parts(&t2.access).0["kid"], kid.as_str());
    assert_eq!(a.me_status(&t2.access).await, StatusCode::OK);
    // The compromised key verifies nothing any more, on either instance, and is gone
    // from both JWKS.
    for srv in [&a, &second] {
        assert_invalid_token(srv.get_auth("/me", &t.access).await).await;
        let kids = published_kids(srv).await;
        assert_eq!(kids, vec![json!(kid)], "{old_kid} unpublished");
    }
}

#[per_backend]
pub async fn revoking_a_retired_key_ends_it_at_once(b: Backend) {
    let srv = server(b, SigningAlgorithm::EdDsa).await;
    let t = srv.user("alzy").await;
    let old_kid = jwt_parts(&t.access).0["kid"].as_str().unwrap().to_owned();
    srv.rotate_keys().await;
    // Routine rotation: the old key still verifies and is published...
    assert_eq!(srv.me_status(&t.access).await, StatusCode::OK);
    // ...until it is revoked.
    srv.auth().revoke_signing_key(&old_kid).await.expect("revoke");
    assert_invalid_token(srv.get_auth("/me", &t.access).await).await;
    let jwks = srv.get_json("/.well-known/jwks.json").await;
    assert!(!jwks.to_string().contains(&old_kid), "{jwks}");
}

/// The kids in the server's JWKS, in order.
async fn published_kids(srv: &TestServer) -> Vec<Value> {
    srv.get_json("/.well-known/jwks.json").await["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].clone())
        .collect()
}

/// The discovery document as a client claiming `Host: attacker.example` gets it.
async fn discovery_for_a_forged_host(srv: &TestServer) -> Value {
    srv.http
        .get(srv.url("/.well-known/openid-configuration"))
        .header("host", "attacker.example")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[per_backend]
pub async fn discovery_urls_never_come_from_the_host_header(b: Backend) {
    let srv = TestServer::start(b).await;
    let conf = discovery_for_a_forged_host(&srv).await;
    assert_eq!(conf["jwks_uri"], format!("{}/.well-known/jwks.json", srv.base));
    let public = TestServer::start_with(b, |s| s.http.public_url = Some("https://auth.example.com".into())).await;
    let conf = discovery_for_a_forged_host(&public).await;
    assert_eq!(conf["jwks_uri"], "https://auth.example.com/.well-known/jwks.json");
    assert_eq!(conf["token_endpoint"], "https://auth.example.com/oauth/token");
    assert_eq!(conf["issuer"], "https://auth.example.com");
}

#[per_backend]
pub async fn switching_from_hs256_accepts_previous_secret_tokens(b: Backend) {
    let hs = TestServer::start(b).await;
    let t = hs.user("alzy").await;
    let mut settings = hs.settings.clone();
    let clock = hs.clock.clone();
    let _dir = hs.stop().await;
    settings.tokens.algorithm = Some(SigningAlgorithm::EdDsa);
    settings.tokens.secret_key = None;
    settings.tokens.previous_secret_keys = vec![tokengate::config::check_secret(TEST_SECRET).unwrap()];
    let ed = TestServer::start_settings(settings.clone(), clock.clone()).await;
    assert_eq!(
        ed.me_status(&t.access).await,
        StatusCode::OK,
        "HS256 token during the switch"
    );
    let new = ed.login("alzy", PASSWORD).await;
    assert_eq!(jwt_parts(&new.access).0["alg"], "EdDSA");
    assert_eq!(
        ed.get_json("/.well-known/jwks.json").await["keys"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let _dir2 = ed.stop().await;
    settings.tokens.previous_secret_keys.clear();
    let done = TestServer::start_settings(settings, clock).await;
    assert_invalid_token(done.get_auth("/me", &t.access).await).await;
    assert_eq!(done.me_status(&new.access).await, StatusCode::OK);
}
