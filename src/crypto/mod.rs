//! Cryptography, all of it from well-kept crates: argon2id password hashing, JWT
//! signing and verification, refresh-token generation and hashing, signing keys.

pub mod algorithm;
pub mod at_rest;
pub mod device;
pub mod hash_pool;
pub mod id_token;
pub mod jws;
pub mod keygen;
pub mod keys;
pub mod mac;
pub mod opaque;
pub mod passwords;
pub mod pkce;
pub mod recovery_codes;
pub mod secret_strength;
pub mod tokens;
pub mod totp;
pub mod verified;
