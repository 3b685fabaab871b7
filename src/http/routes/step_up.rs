//! Step-up: what a request that changes a credential carries besides its access token
//! (contract v1.2: the account password, and a second proof when the account has MFA:
//! a current code, or a passkey's answer to `POST /auth/passkeys/step-up/start`).

use serde_json::Value;
use utoipa::ToSchema;

use crate::auth::{PasskeyProof, StepUp};
use crate::domain::Password;
use crate::http::body::{Checker, FromFields};
use crate::http::error::ApiError;

/// Step-up: the account password, and, when the account has MFA, a current code (TOTP
/// or recovery code) or a passkey's answer.
#[derive(ToSchema)]
pub struct StepUpBody {
    #[schema(format = Password)]
    password: String,
    /// Required when the account has MFA (unless `passkey` is given): a current TOTP
    /// code or an unused recovery code.
    #[schema(nullable = false, example = "123456")]
    code: Option<String>,
    /// In place of `code`: the answer of one of the caller's passkeys to a step-up
    /// ceremony (`POST /auth/passkeys/step-up/start`).
    #[schema(nullable = false)]
    passkey: Option<PasskeyProofBody>,
}

/// A passkey's answer to a ceremony: its id, and what `navigator.credentials.get()`
/// returned (as `PublicKeyCredential.toJSON()` gives it).
#[derive(ToSchema)]
pub struct PasskeyProofBody {
    ceremony_id: String,
    #[schema(value_type = Object)]
    credential: Value,
}

/// The `passkey` field of a body, if any.
pub fn passkey_field(c: &mut Checker<'_>) -> Option<PasskeyProof> {
    let v = c.optional_object("passkey")?;
    let ceremony_id = v.get("ceremony_id").and_then(Value::as_str).map(str::to_owned);
    let credential = v.get("credential").filter(|c| c.is_object()).cloned();
    match (ceremony_id, credential) {
        (Some(ceremony_id), Some(credential)) => Some(PasskeyProof {
            ceremony_id,
            credential,
        }),
        _ => {
            c.fail(
                "passkey",
                "Input should be an object with ceremony_id (string) and credential (object)",
                "value_error",
            );
            None
        }
    }
}

impl FromFields for StepUpBody {
    fn from_fields(c: &mut Checker<'_>) -> Option<Self> {
        let password = c.owned("password");
        let code = c.optional_string("code").map(str::to_owned);
        let passkey = passkey_field(c).map(|p| PasskeyProofBody {
            ceremony_id: p.ceremony_id,
            credential: p.credential,
        });
        Some(Self {
            password: password?,
            code,
            passkey,
        })
    }
}

/// A typed password and second proof as auth's step-up (a password that cannot be one
/// is wrong).
pub fn step_up(password: &str, code: Option<String>, passkey: Option<PasskeyProof>) -> Result<StepUp, ApiError> {
    let password = Password::candidate(password).ok_or(ApiError::WrongPassword)?;
    Ok(StepUp {
        password,
        code,
        passkey,
    })
}

impl StepUpBody {
    pub fn into_step_up(self) -> Result<StepUp, ApiError> {
        let passkey = self.passkey.map(|p| PasskeyProof {
            ceremony_id: p.ceremony_id,
            credential: p.credential,
        });
        step_up(&self.password, self.code, passkey)
    }
}
