//! Signing and first verification per algorithm, through tokengate's own key loading
//! and `jsonwebtoken` (whichever crypto backend it is built with): what a login or a
//! refresh pays to sign, and what the first check of a new access token pays before
//! the verified-token memo serves it.
//!
//!     cargo bench --bench jwt_algorithms
//!
//! Prints one line per algorithm: `alg=... sign_us=... jsonwebtoken_encode_us=...
//! verify_us=...` (medians of 9 rounds of 200 distinct tokens each). `sign_us` is the
//! server's signer (`crypto::jws`, the key parsed once); `jsonwebtoken_encode_us` is
//! `jsonwebtoken::encode`, which parses the key for every token.

use std::time::Instant;

use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Value, json};
use tokengate::crypto::jws::JwsSigner;
use tokengate::crypto::keygen;
use tokengate::crypto::keys::SigningAlgorithm;

const TOKENS: usize = 200;
const ROUNDS: usize = 9;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Per-token microseconds of `work` over `ROUNDS` rounds of `TOKENS` tokens (the
/// median round), and the tokens of the last round.
fn timed(mut work: impl FnMut(usize, usize) -> String) -> (f64, Vec<String>) {
    let mut rounds = Vec::new();
    let mut tokens = Vec::new();
    for round in 0..ROUNDS {
        let started = Instant::now();
        tokens = (0..TOKENS).map(|i| work(round, i)).collect();
        rounds.push(started.elapsed().as_secs_f64() * 1e6 / TOKENS as f64);
    }
    (median(rounds), tokens)
}

fn main() {
    let hs_secret = [7u8; 32];
    let mut keys: Vec<(&str, jsonwebtoken::Algorithm, JwsSigner, EncodingKey, DecodingKey)> = vec![(
        "HS256",
        jsonwebtoken::Algorithm::HS256,
        JwsSigner::hs256(&hs_secret),
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
        let encoding = match alg {
            SigningAlgorithm::EdDsa => EncodingKey::from_ed_der(&der),
            SigningAlgorithm::Es256 => EncodingKey::from_ec_der(&der),
            _ => EncodingKey::from_rsa_der(&der),
        };
        let signer = std::sync::Arc::try_unwrap(key.signer).ok().expect("one owner");
        keys.push((name, key.alg, signer, encoding, key.decoding));
    }
    for (name, alg, signer, encoding, decoding) in &keys {
        let header = Header::new(*alg);
        let mut validation = Validation::new(*alg);
        validation.validate_aud = false;
        let claims = |round: usize, i: usize| json!({"sub": format!("user-{round}-{i}"), "exp": 4_000_000_000u64});
        let (ours, tokens) = timed(|round, i| signer.sign(&header, &claims(round, i)).expect("sign"));
        let (jsonwebtoken, _) =
            timed(|round, i| jsonwebtoken::encode(&header, &claims(round, i), encoding).expect("sign"));
        let (verify, _) = timed(|_, i| {
            jsonwebtoken::decode::<Value>(&tokens[i], decoding, &validation).expect("verify");
            String::new()
        });
        println!("alg={name} sign_us={ours:.1} jsonwebtoken_encode_us={jsonwebtoken:.1} verify_us={verify:.1}");
    }
}
