//! A real SMTP server for the mail tests (mailin-embedded, on 127.0.0.1, a port of its
//! own): it keeps every message it accepts, and can be told to refuse for a while
//! (a 451 "try later" or a 550 "no such mailbox") as real servers do.

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mailin_embedded::response::{INTERNAL_ERROR, NO_MAILBOX, OK};
use mailin_embedded::{Handler, Response, Server};

/// One message as the server received it.
#[derive(Clone, Debug)]
pub struct Received {
    pub from: String,
    pub to: Vec<String>,
    pub raw: Vec<u8>,
}

impl Received {
    /// The token of the first `#token=` link of its plain-text part.
    pub fn token(&self) -> String {
        let link = self.link();
        let start = link.find("#token=").expect("a link with a token") + "#token=".len();
        link[start..].split('&').next().unwrap_or_default().to_owned()
    }

    /// The first link with a `#token=` of its plain-text part, as a reader clicks it.
    pub fn link(&self) -> String {
        let m = self.parsed();
        let text = m.body_text(0).expect("a text part").into_owned();
        let at = text.find("#token=").expect("a link with a token");
        let start = text[..at].rfind("http").expect("an absolute link");
        let end = text[at..].find(char::is_whitespace).map_or(text.len(), |n| at + n);
        text[start..end].to_owned()
    }

    pub fn subject(&self) -> String {
        self.parsed().subject().unwrap_or_default().to_owned()
    }

    /// The message as a mail client parses it.
    pub fn parsed(&self) -> mail_parser::Message<'_> {
        mail_parser::MessageParser::default()
            .parse(&self.raw)
            .expect("a parsable message")
    }
}

/// What the server answers to a message's recipient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    Accept,
    /// 451: a transient failure; the sender should try again later.
    TryLater,
    /// 550: a permanent failure.
    NoMailbox,
}

#[derive(Default)]
struct Shared {
    received: Mutex<Vec<Received>>,
    answer: Mutex<Option<Answer>>,
}

#[derive(Clone)]
struct Sink {
    shared: Arc<Shared>,
    from: String,
    to: Vec<String>,
    data: Vec<u8>,
}

impl Handler for Sink {
    // Refused at the recipient, as a greylisting or full server does.
    fn rcpt(&mut self, _to: &str) -> Response {
        match *self.shared.answer.lock().unwrap() {
            Some(Answer::TryLater) => INTERNAL_ERROR,
            Some(Answer::NoMailbox) => NO_MAILBOX,
            _ => OK,
        }
    }

    fn data_start(&mut self, _domain: &str, from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.from = from.to_owned();
        self.to = to.to_vec();
        self.data.clear();
        OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        self.shared.received.lock().unwrap().push(Received {
            from: self.from.clone(),
            to: self.to.clone(),
            raw: std::mem::take(&mut self.data),
        });
        OK
    }
}

/// A running SMTP server; it stops with the test process.
pub struct SmtpSink {
    pub port: u16,
    shared: Arc<Shared>,
}

impl SmtpSink {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared::default());
        let sink = Sink {
            shared: shared.clone(),
            from: String::new(),
            to: Vec::new(),
            data: Vec::new(),
        };
        let mut server = Server::new(sink);
        server.with_name("sink.test").with_tcp_listener(listener);
        std::thread::spawn(move || {
            if let Err(e) = server.serve() {
                eprintln!("the test SMTP server stopped: {e}");
            }
        });
        Self { port, shared }
    }

    /// `TOKENGATE_SMTP_URL` for this server.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}?tls=none", self.port)
    }

    pub fn answer(&self, answer: Answer) {
        *self.shared.answer.lock().unwrap() = Some(answer);
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// Wait until `n` messages arrived (or panic after `within`); all of them.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Received> {
        let until = Instant::now() + within;
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < until,
                "{} of {n} messages arrived in {within:?}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The last message to `to` (waiting up to 5 s for one).
    pub async fn last_to(&self, to: &str) -> Received {
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(r) = self.received().into_iter().rev().find(|r| r.to.iter().any(|t| t == to)) {
                return r;
            }
            assert!(Instant::now() < until, "no message to {to} arrived in 5 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The last message to `to` whose subject contains `subject` (waiting up to 5 s).
    pub async fn mail_to(&self, to: &str, subject: &str) -> Received {
        let until = Instant::now() + Duration::from_secs(5);
        loop {
            let found = self
                .received()
                .into_iter()
                .rev()
                .find(|r| r.to.iter().any(|t| t == to) && r.subject().contains(subject));
            if let Some(r) = found {
                return r;
            }
            assert!(
                Instant::now() < until,
                "no message to {to} about {subject:?} arrived in 5 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// How many messages went to `to`.
    pub fn count_to(&self, to: &str) -> usize {
        self.received().iter().filter(|r| r.to.iter().any(|t| t == to)).count()
    }
}
