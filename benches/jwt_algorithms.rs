//! Signing and first verification per algorithm, through tokengate's own key loading
//! and `jsonwebtoken` (whichever crypto backend it is built with): what a login or a
//! refresh pays to sign, and what the first check of a new access token pays before
//! the verified-token memo serves it.
//!
//!     cargo bench --bench jwt_algorithms
//!
//! Prints one line per algorithm: `alg=... sign_us=... verify_us=...` (medians of 9
//! rounds of 200 distinct tokens each).

use std::time::Instant;

use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Value, json};
use tokengate::crypto::keygen;
use tokengate::crypto::keys::SigningAlgorithm;

const TOKENS: usize = 200;
const ROUNDS: usize = 9;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let hs_secret = [7u8; 32];
    let mut keys: Vec<(&str, jsonwebtoken::Algorithm, EncodingKey, DecodingKey)> = vec![(
        "HS256",
        jsonwebtoken::Algorithm::HS256,
        EncodingKey::from_secret(&hs_secret),
        DecodingKey::from_secret(&hs_secret),
    )];
    for (name, alg) in [
        ("EdDSA", SigningAlgorithm::EdDsa),
        ("ES256", SigningAlgorithm::Es256),
        ("RS256", SigningAlgorithm::Rs256),
    ] {
        let (kid, der) = keygen::generate(alg).expect("generate");
        let key = keygen::load(&kid, alg, &der).expect("load");
        keys.push((name, key.alg, key.encoding, key.decoding));
    }
    for (name, alg, encoding, decoding) in &keys {
        let header = Header::new(*alg);
        let mut validation = Validation::new(*alg);
        validation.validate_aud = false;
        let (mut sign, mut verify) = (Vec::new(), Vec::new());
        for round in 0..ROUNDS {
            let started = Instant::now();
            let tokens: Vec<String> = (0..TOKENS)
                .map(|i| {
                    let claims = json!({"sub": format!("user-{round}-{i}"), "exp": 4_000_000_000u64});
                    jsonwebtoken::encode(&header, &claims, encoding).expect("sign")
                })
                .collect();
            sign.push(started.elapsed().as_secs_f64() * 1e6 / TOKENS as f64);
            let started = Instant::now();
            for t in &tokens {
                jsonwebtoken::decode::<Value>(t, decoding, &validation).expect("verify");
            }
            verify.push(started.elapsed().as_secs_f64() * 1e6 / TOKENS as f64);
        }
        println!("alg={name} sign_us={:.1} verify_us={:.1}", median(sign), median(verify));
    }
}
