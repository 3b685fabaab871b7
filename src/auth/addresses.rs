//! Addresses stored before they had one spelling (the domain in its DNS form, an ASCII
//! local part: see [`Email::parse`]). A serving instance rewrites them once, at start:
//! without that, a user stored as `bob@bücher.de` would not be found under the spelling
//! every lookup now uses, and the same mailbox could register again.

use super::{AuthError, AuthService};
use crate::domain::{Email, Username};
use crate::store::{StoreError, UserUpdate};

/// What a rewrite did.
#[derive(Debug, Default)]
pub struct Respelled {
    /// Addresses rewritten in their one spelling.
    pub rewritten: usize,
    /// Accounts whose address could not be: the user, and why.
    pub left: Vec<(Username, String)>,
}

impl AuthService {
    /// Rewrite every stored address that is not in its one spelling. One that cannot be
    /// written so (a non-ASCII local part), or whose new spelling another account holds,
    /// is left as it is and reported: an operator gives that user another address.
    pub async fn respell_stored_addresses(&self) -> Result<Respelled, AuthError> {
        let mut report = Respelled::default();
        for user in self.store.users_with_non_ascii_email().await? {
            let stored = user.email.as_str().to_owned();
            match Email::parse(&stored) {
                Ok(email) if email.as_str() != stored => {
                    let update = UserUpdate {
                        email: Some(email),
                        ..UserUpdate::default()
                    };
                    match self.store.update_user(user.id, update, None, self.clock.now()).await {
                        Ok(_) => report.rewritten += 1,
                        Err(StoreError::Conflict) => report.left.push((
                            user.username,
                            format!("{stored}: another account holds its new spelling"),
                        )),
                        Err(e) => return Err(e.into()),
                    }
                }
                Ok(_) => {}
                Err(why) => report.left.push((user.username, format!("{stored}: {why}"))),
            }
        }
        Ok(report)
    }
}
