//! Drive the signed-in code + PKCE flow N times, sequentially, one client, as
//! `bench/oidc_flow.sh` runs it against tokengate and then the peer:
//!
//!   oidc-flow tokengate BASE CLIENT_ID USERNAME PASSWORD N
//!   oidc-flow peer BASE N
//!
//! Each flow: GET the authorization endpoint with the browser's cookies (signed in, the
//! app allowed), follow the provider's own redirects to the app's redirect URI, POST
//! the code with its verifier to the token endpoint, verify the id_token (signature by
//! the JWKS key its `kid` names, `iss`, `aud`, `nonce`). Prints flows/s and the mean
//! time of each leg.

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{DecodingKey, Validation, jwk::JwkSet};
use serde_json::Value;
use sha2::{Digest, Sha256};

const PEER_REDIRECT: &str = "http://127.0.0.1:9/cb";
const TG_REDIRECT: &str = "http://127.0.0.1:9/cb";

fn random() -> String {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).expect("randomness");
    URL_SAFE_NO_PAD.encode(raw)
}

struct Provider {
    base: String,
    authorize: String,
    token: String,
    issuer: String,
    jwks: JwkSet,
    client_id: String,
    redirect: &'static str,
    /// The peer's development login page: its form fields.
    peer_login: bool,
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .max_redirects(0)
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

fn discover(agent: &ureq::Agent, base: &str) -> (String, String, String, JwkSet) {
    let d: Value = agent
        .get(format!("{base}/.well-known/openid-configuration"))
        .call()
        .expect("discovery")
        .body_mut()
        .read_json()
        .expect("discovery json");
    let jwks: JwkSet = agent
        .get(d["jwks_uri"].as_str().unwrap())
        .call()
        .expect("jwks")
        .body_mut()
        .read_json()
        .expect("jwks json");
    (
        d["authorization_endpoint"].as_str().unwrap().to_owned(),
        d["token_endpoint"].as_str().unwrap().to_owned(),
        d["issuer"].as_str().unwrap().to_owned(),
        jwks,
    )
}

/// The times one flow spent in each leg.
#[derive(Default)]
struct Legs {
    authorize: Duration,
    token: Duration,
    verify: Duration,
}

/// One flow; the code's way back is followed through the provider's pages (the peer's
/// login and consent forms, the first time).
fn flow(agent: &ureq::Agent, p: &Provider, legs: &mut Legs) {
    let verifier = random();
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let (nonce, state) = (random(), random());
    let mut url = url::Url::parse(&p.authorize).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &p.client_id)
        .append_pair("redirect_uri", p.redirect)
        .append_pair("scope", "openid profile")
        .append_pair("state", &state)
        .append_pair("nonce", &nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let started = Instant::now();
    let mut res = agent.get(url.as_str()).call().expect("authorize");
    let code = loop {
        let location = res
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .map(str::to_owned);
        match location {
            Some(l) if l.starts_with(p.redirect) => {
                let back = url::Url::parse(&l).unwrap();
                let q: std::collections::HashMap<_, _> = back.query_pairs().into_owned().collect();
                assert_eq!(q.get("state"), Some(&state), "state comes back");
                break q.get("code").expect("a code").clone();
            }
            Some(l) => {
                let next = url::Url::parse(&p.base).unwrap().join(&l).unwrap();
                res = agent.get(next.as_str()).call().expect("redirect");
            }
            None => {
                // A page of the provider's with a form (the peer's login or consent).
                assert!(
                    p.peer_login,
                    "tokengate answered {} instead of a redirect",
                    res.status()
                );
                let html = res.body_mut().read_to_string().unwrap();
                let action = regex_lite::Regex::new(r#"action="([^"]+)""#).unwrap();
                let input = regex_lite::Regex::new(r#"<input[^>]*name="([^"]+)"[^>]*value="([^"]*)""#).unwrap();
                let action = action.captures(&html).expect("a form")[1].to_owned();
                let mut fields: Vec<(String, String)> = input
                    .captures_iter(&html)
                    .map(|c| (c[1].to_owned(), c[2].to_owned()))
                    .collect();
                if html.contains("name=\"login\"") {
                    fields.push(("login".into(), "alice".into()));
                    fields.push(("password".into(), "x".into()));
                }
                let next = url::Url::parse(&p.base).unwrap().join(&action).unwrap();
                let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                res = agent.post(next.as_str()).send_form(pairs).expect("form");
            }
        }
    };
    let authorized = Instant::now();
    let tokens: Value = agent
        .post(&p.token)
        .send_form([
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", p.redirect),
            ("client_id", p.client_id.as_str()),
            ("code_verifier", verifier.as_str()),
        ])
        .expect("token")
        .body_mut()
        .read_json()
        .expect("token json");
    let exchanged = Instant::now();
    let id_token = tokens["id_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no id_token: {tokens}"));
    let header = jsonwebtoken::decode_header(id_token).expect("an id_token header");
    let jwk = p
        .jwks
        .find(header.kid.as_deref().unwrap())
        .expect("its key in the JWKS");
    let mut v = Validation::new(header.alg);
    v.set_issuer(&[&p.issuer]);
    v.set_audience(&[&p.client_id]);
    let claims = jsonwebtoken::decode::<Value>(id_token, &DecodingKey::from_jwk(jwk).unwrap(), &v)
        .expect("a valid id_token")
        .claims;
    assert_eq!(claims["nonce"].as_str(), Some(nonce.as_str()));
    legs.authorize += authorized - started;
    legs.token += exchanged - authorized;
    legs.verify += exchanged.elapsed();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let agent = agent();
    let (provider, n) = match args.get(1).map(String::as_str) {
        Some("tokengate") => {
            let base = args[2].trim_end_matches('/').to_owned();
            let (client_id, username, password) = (&args[3], &args[4], &args[5]);
            // The browser's session: the account page's cookie sign-in.
            let res = agent
                .post(format!("{base}/auth/cookie/login"))
                .send_json(serde_json::json!({"username": username, "password": password}))
                .expect("cookie login");
            assert_eq!(res.status(), 200, "cookie login");
            let (authorize, token, issuer, jwks) = discover(&agent, &base);
            let p = Provider {
                base,
                authorize,
                token,
                issuer,
                jwks,
                client_id: client_id.clone(),
                redirect: TG_REDIRECT,
                peer_login: false,
            };
            (p, args[6].parse::<u32>().unwrap())
        }
        Some("peer") => {
            let base = args[2].trim_end_matches('/').to_owned();
            let (authorize, token, issuer, jwks) = discover(&agent, &base);
            let p = Provider {
                base,
                authorize,
                token,
                issuer,
                jwks,
                client_id: "peer-public".into(),
                redirect: PEER_REDIRECT,
                peer_login: true,
            };
            (p, args[3].parse::<u32>().unwrap())
        }
        _ => {
            eprintln!("usage: oidc-flow tokengate BASE CLIENT_ID USERNAME PASSWORD N | oidc-flow peer BASE N");
            std::process::exit(2);
        }
    };
    // The first flow signs in and consents where the provider asks (the peer); then the
    // signed-in path, measured.
    let mut legs = Legs::default();
    flow(&agent, &provider, &mut legs);
    flow(&agent, &provider, &mut legs);
    let mut legs = Legs::default();
    let started = Instant::now();
    for _ in 0..n {
        flow(&agent, &provider, &mut legs);
    }
    let took = started.elapsed();
    let per = |d: Duration| d.as_secs_f64() * 1000.0 / f64::from(n);
    println!(
        "{:.1} flows/s signed in ({:.2} ms each: authorize {:.2}, token {:.2}, id_token check {:.2}; {n} sequential)",
        f64::from(n) / took.as_secs_f64(),
        per(took),
        per(legs.authorize),
        per(legs.token),
        per(legs.verify)
    );
}
