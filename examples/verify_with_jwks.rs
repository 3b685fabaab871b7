//! Verify a tokengate access token in another Rust service, with `jsonwebtoken` and
//! tokengate's JWKS: pick the key by `kid`, pin the algorithm to that key's, check
//! `iss`, `aud` and `exp`.
//!
//! ```sh
//! TOKENGATE_ALGORITHM=EdDSA cargo run --release -- serve &
//! ACCESS=$(curl -s -X POST localhost:8000/auth/login -d 'username=alzy&password=strongpass123' | jq -r .access_token)
//! cargo run --example verify_with_jwks -- http://localhost:8000 "$ACCESS"
//! ```

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation, decode, decode_header};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(base), Some(token)) = (args.next(), args.next()) else {
        eprintln!("usage: verify_with_jwks TOKENGATE_URL ACCESS_TOKEN");
        std::process::exit(2);
    };
    let issuer = std::env::var("TOKENGATE_ISSUER").unwrap_or_else(|_| "tokengate".into());
    let audience = std::env::var("TOKENGATE_AUDIENCE").unwrap_or_else(|_| "tokengate".into());

    // In a real service: cache this for the Cache-Control max-age tokengate sends.
    let jwks: JwkSet = reqwest::get(format!("{base}/.well-known/jwks.json"))
        .await?
        .json()
        .await?;
    let kid = decode_header(&token)?.kid.ok_or("token has no kid")?;
    let jwk = jwks
        .find(&kid)
        .ok_or("unknown kid: refetch the JWKS once, then refuse")?;
    let alg = jwk.common.key_algorithm.ok_or("JWK without alg")?.to_string().parse()?;

    let mut validation = Validation::new(alg); // pinned by the key, never by the token
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    let claims = decode::<Value>(&token, &DecodingKey::from_jwk(jwk)?, &validation)?.claims;
    if claims["type"] != "access" {
        return Err("not an access token".into());
    }
    println!("valid: sub={} roles={}", claims["sub"], claims["roles"]);
    Ok(())
}
