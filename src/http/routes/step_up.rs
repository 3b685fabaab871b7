//! Step-up: what a request that changes a credential carries besides its access token
//! (contract v1.2: the account password, and a current code when the account has MFA).

use utoipa::ToSchema;

use crate::auth::StepUp;
use crate::domain::Password;
use crate::http::body::{Checker, FromFields};
use crate::http::error::ApiError;

/// Step-up: the account password, and a current code (TOTP or recovery code) when the
/// account has MFA.
#[derive(ToSchema)]
pub struct StepUpBody {
    #[schema(format = Password)]
    password: String,
    /// Required when the account has MFA: a current TOTP code or an unused recovery code.
    #[schema(nullable = false, example = "123456")]
    code: Option<String>,
}

impl FromFields for StepUpBody {
    fn from_fields(c: &mut Checker<'_>) -> Option<Self> {
        let password = c.owned("password");
        let code = c.optional_string("code").map(str::to_owned);
        Some(Self {
            password: password?,
            code,
        })
    }
}

/// A typed password and code as auth's step-up (a password that cannot be one is wrong).
pub fn step_up(password: &str, code: Option<String>) -> Result<StepUp, ApiError> {
    let password = Password::candidate(password).ok_or(ApiError::WrongPassword)?;
    Ok(StepUp { password, code })
}

impl StepUpBody {
    pub fn into_step_up(self) -> Result<StepUp, ApiError> {
        step_up(&self.password, self.code)
    }
}
