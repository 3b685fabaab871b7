//! Delivery of one composed message: to an SMTP server (lettre, TLS by rustls), or as a
//! `.eml` file (mode 0600) in a folder when no server is configured.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lettre::address::{Address, Envelope};
use lettre::message::Mailbox;
use lettre::transport::smtp::AsyncSmtpTransport;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncTransport as _, Tokio1Executor};

use super::settings::{MailTransportSettings, SmtpTls, SmtpUrl};
use crate::domain::MailId;

/// How long one SMTP conversation may take before it counts as a failed attempt.
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a delivery failed, and whether trying again may help.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct DeliveryError {
    /// The server refused the message for good (a 5xx answer): retrying cannot help.
    pub permanent: bool,
    pub message: String,
}

impl DeliveryError {
    fn transient(message: impl Into<String>) -> Self {
        Self {
            permanent: false,
            message: message.into(),
        }
    }
}

/// Where messages go.
pub enum Transport {
    Smtp {
        client: Box<AsyncSmtpTransport<Tokio1Executor>>,
        url: SmtpUrl,
        /// One conversation at most (lettre itself bounds only the connect).
        timeout: Duration,
    },
    Files(PathBuf),
}

impl Transport {
    pub fn new(settings: &MailTransportSettings) -> Result<Self, String> {
        match settings {
            MailTransportSettings::Files(dir) => Ok(Self::Files(dir.clone())),
            MailTransportSettings::Smtp(url) => {
                let tls_params =
                    || TlsParameters::new(url.host.clone()).map_err(|e| format!("TLS for {}: {e}", url.host));
                let tls = match url.tls {
                    SmtpTls::Implicit => Tls::Wrapper(tls_params()?),
                    SmtpTls::StartTls => Tls::Required(tls_params()?),
                    SmtpTls::None => Tls::None,
                };
                let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(url.host.clone())
                    .port(url.port)
                    .tls(tls)
                    .timeout(Some(SMTP_TIMEOUT));
                if let Some((user, pass)) = &url.credentials {
                    builder = builder.credentials(Credentials::new(user.clone(), pass.clone()));
                }
                Ok(Self::Smtp {
                    client: Box::new(builder.build()),
                    url: url.clone(),
                    timeout: SMTP_TIMEOUT,
                })
            }
        }
    }

    /// The same transport with another bound on one SMTP conversation.
    pub fn with_timeout(mut self, bound: Duration) -> Self {
        if let Self::Smtp { timeout, .. } = &mut self {
            *timeout = bound;
        }
        self
    }

    /// For the start-up log.
    pub fn describe(&self) -> String {
        match self {
            Self::Smtp { url, .. } => url.describe(),
            Self::Files(dir) => format!(
                ".eml files in {} (no TOKENGATE_SMTP_URL)",
                std::path::absolute(dir).unwrap_or_else(|_| dir.clone()).display()
            ),
        }
    }

    /// Hand `message` (RFC 5322, as composed) to the server, or write it to a file.
    pub async fn deliver(&self, from: &Mailbox, to: &str, message: &[u8], id: MailId) -> Result<(), DeliveryError> {
        match self {
            Self::Smtp { client, timeout, .. } => {
                let to: Address = to.parse().map_err(|e| DeliveryError {
                    permanent: true,
                    message: format!("recipient {to:?}: {e}"),
                })?;
                let envelope = Envelope::new(Some(from.email.clone()), vec![to]).map_err(|e| DeliveryError {
                    permanent: true,
                    message: format!("envelope: {e}"),
                })?;
                // lettre bounds the connect only: a server that stops answering mid-way
                // must not hold this sender for good.
                match tokio::time::timeout(*timeout, client.send_raw(&envelope, message)).await {
                    Ok(sent) => sent.map(drop).map_err(|e| DeliveryError {
                        permanent: e.is_permanent(),
                        message: e.to_string(),
                    }),
                    Err(_) => Err(DeliveryError::transient(format!(
                        "the server did not answer within {} s",
                        timeout.as_secs_f32()
                    ))),
                }
            }
            Self::Files(dir) => write_eml(dir, id, message)
                .await
                .map_err(|e| DeliveryError::transient(format!("cannot write to {}: {e}", dir.display()))),
        }
    }
}

/// Write `<dir>/<id>.eml`, readable by its owner only, whole or not at all (written
/// beside it, then renamed). A folder others may write to is refused: they could plant
/// a link where the file is about to be written, or read what it holds.
async fn write_eml(dir: &Path, id: MailId, message: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _};
    let dir = dir.to_path_buf();
    let message = message.to_vec();
    tokio::task::spawn_blocking(move || {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir)?;
        let meta = std::fs::metadata(&dir)?;
        // SAFETY: geteuid takes nothing and cannot fail.
        let me = unsafe { libc::geteuid() };
        if meta.mode() & 0o022 != 0 || meta.uid() != me {
            return Err(std::io::Error::other(format!(
                "{} is writable by others or not owned by this user (mode {:o}); make it 0700",
                dir.display(),
                meta.mode() & 0o777
            )));
        }
        let path = dir.join(format!("{id}.eml"));
        let partial = dir.join(format!(".{id}.eml.partial"));
        let written = (|| {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&partial)?;
            std::io::Write::write_all(&mut file, &message)?;
            file.sync_all()?;
            std::fs::rename(&partial, &path)?;
            // The rename itself survives a crash once the folder is on disk.
            std::fs::File::open(&dir)?.sync_all()
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&partial);
        }
        written
    })
    .await
    .map_err(std::io::Error::other)?
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[tokio::test]
    async fn a_file_is_written_whole_and_for_its_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let mail_dir = dir.path().join("mail");
        let t = Transport::new(&MailTransportSettings::Files(mail_dir.clone())).unwrap();
        assert!(t.describe().contains(&format!(".eml files in {}", mail_dir.display())));
        let id = MailId::new();
        let from: Mailbox = "tokengate <no-reply@example.com>".parse().unwrap();
        t.deliver(&from, "alice@example.com", b"Subject: hi\r\n\r\nbody\r\n", id)
            .await
            .unwrap();
        let path = mail_dir.join(format!("{id}.eml"));
        assert_eq!(std::fs::read(&path).unwrap(), b"Subject: hi\r\n\r\nbody\r\n");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(
            std::fs::metadata(&mail_dir).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let names: Vec<_> = std::fs::read_dir(&mail_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "no partial file left: {names:?}");
    }

    #[tokio::test]
    async fn a_server_that_stops_answering_mid_way_is_a_transient_failure_in_bounded_time() {
        // Accepts, greets, and then says nothing more.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            tokio::io::AsyncWriteExt::write_all(&mut socket, b"220 mute.test ESMTP\r\n")
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_secs(60)).await;
            drop(socket);
        });
        let url = SmtpUrl::parse(&format!("smtp://127.0.0.1:{port}?tls=none")).unwrap();
        let t = Transport::new(&MailTransportSettings::Smtp(url))
            .unwrap()
            .with_timeout(Duration::from_millis(300));
        let from: Mailbox = "no-reply@example.com".parse().unwrap();
        let started = std::time::Instant::now();
        let err = t
            .deliver(
                &from,
                "alice@example.com",
                b"Subject: hi\r\n\r\nbody\r\n",
                MailId::new(),
            )
            .await
            .unwrap_err();
        assert!(!err.permanent && err.message.contains("did not answer"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn an_smtp_server_that_does_not_answer_is_a_transient_failure() {
        // A port nothing listens on (bound, then closed).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = SmtpUrl::parse(&format!("smtp://127.0.0.1:{port}?tls=none")).unwrap();
        let t = Transport::new(&MailTransportSettings::Smtp(url)).unwrap();
        let from: Mailbox = "no-reply@example.com".parse().unwrap();
        let err = t
            .deliver(
                &from,
                "alice@example.com",
                b"Subject: hi\r\n\r\nbody\r\n",
                MailId::new(),
            )
            .await
            .unwrap_err();
        assert!(!err.permanent, "{err}");
    }
}
