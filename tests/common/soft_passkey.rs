//! A passkey authenticator and WebAuthn client no one here wrote (1Password's
//! `passkey` crates): it answers the server's `publicKey` options as a browser would,
//! with `toJSON()`'s shape, so the tests check the server against an independent
//! implementation of both standards.

#![allow(dead_code)]

use passkey::authenticator::{Authenticator, UiHint, UserCheck, UserValidationMethod};
use passkey::client::{Client, DefaultClientData};
use passkey::crypto::rust_crypto::RustCryptoBackend;
use passkey::types::Passkey;
use passkey::types::ctap2::{Aaguid, Ctap2Error};
use passkey::types::webauthn::{CredentialCreationOptions, CredentialRequestOptions};
use serde_json::{Value, json};
use url::Url;

/// A user who is present and verified (PIN or biometrics), every time.
struct Verified;

#[async_trait::async_trait]
impl UserValidationMethod for Verified {
    type PasskeyItem = Passkey;

    async fn check_user<'a>(
        &self,
        _hint: UiHint<'a, Passkey>,
        _presence: bool,
        _verification: bool,
    ) -> Result<UserCheck, Ctap2Error> {
        Ok(UserCheck {
            presence: true,
            verification: true,
        })
    }

    fn is_verification_enabled(&self) -> Option<bool> {
        Some(true)
    }

    fn is_presence_enabled(&self) -> bool {
        true
    }
}

/// One authenticator holding at most one passkey (discoverable), with a browser in
/// front of it at `origin`.
pub struct SoftPasskey {
    client: Client<Option<Passkey>, Verified, RustCryptoBackend, public_suffix::PublicSuffixList, ()>,
    pub origin: Url,
}

impl SoftPasskey {
    /// An authenticator that keeps a signature counter (as security keys do), so a copy
    /// of it going backwards can be seen.
    pub fn new(origin: &str) -> Self {
        let mut authenticator = Authenticator::new(Aaguid::new_empty(), None, Verified, RustCryptoBackend);
        authenticator.set_make_credentials_with_signature_counter(true);
        Self {
            client: Client::new(authenticator).allows_insecure_localhost(true),
            origin: Url::parse(origin).expect("origin"),
        }
    }

    /// The authenticator's passkey as it stands (a copy: a clone of the key).
    pub fn stored(&self) -> Option<Passkey> {
        self.client.authenticator().store().clone()
    }

    /// Put back a copy taken earlier (its counter with it).
    pub fn restore(&mut self, copy: Option<Passkey>) {
        *self.client.authenticator_mut().store_mut() = copy;
    }

    /// Answer `navigator.credentials.create({publicKey})`, at `origin`.
    pub async fn create_at(&mut self, origin: &Url, public_key: &Value) -> Result<Value, String> {
        let options: CredentialCreationOptions =
            serde_json::from_value(json!({ "publicKey": public_key })).map_err(|e| format!("options: {e}"))?;
        let created = self
            .client
            .register(origin, options, DefaultClientData)
            .await
            .map_err(|e| format!("{e:?}"))?;
        serde_json::to_value(created).map_err(|e| e.to_string())
    }

    pub async fn create(&mut self, public_key: &Value) -> Value {
        let origin = self.origin.clone();
        self.create_at(&origin, public_key).await.expect("create")
    }

    /// Answer `navigator.credentials.get({publicKey})`, at `origin`.
    pub async fn get_at(&mut self, origin: &Url, public_key: &Value) -> Result<Value, String> {
        let options: CredentialRequestOptions =
            serde_json::from_value(json!({ "publicKey": public_key })).map_err(|e| format!("options: {e}"))?;
        let asserted = self
            .client
            .authenticate(origin, options, DefaultClientData)
            .await
            .map_err(|e| format!("{e:?}"))?;
        serde_json::to_value(asserted).map_err(|e| e.to_string())
    }

    pub async fn get(&mut self, public_key: &Value) -> Value {
        let origin = self.origin.clone();
        self.get_at(&origin, public_key).await.expect("get")
    }
}
