//! Mail delivery through the outbox to a real SMTP server (tests/common/smtp.rs), on
//! every backend: each message arrives once, as a mail client reads it (both parts);
//! a server that says "try later" gets it after the backoff, with nothing lost; a
//! permanent refusal is given up on, kept with its error, and queued again by an
//! operator; a queued message is sealed at rest when the server seals secrets; two
//! senders (two instances) on one database deliver each message once.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::smtp::{Answer, SmtpSink};
use common::stores::open;
use mail_parser::MimeHeaders as _;
use tokengate::clock::{Clock, ManualClock};
use tokengate::crypto::at_rest::{EncryptionKey, Vault, sealed_with};
use tokengate::domain::Email;
use tokengate::mail::{Content, MailService, MailTransportSettings, SmtpUrl, Transport};
use tokengate::store::Store;
use tokengate_test_macros::per_backend;

fn service(store: &Arc<dyn Store>, sink: &SmtpSink, vault: Vault, clock: Arc<dyn Clock>) -> MailService {
    let url = SmtpUrl::parse(&sink.url()).unwrap();
    let transport = Transport::new(&MailTransportSettings::Smtp(url)).unwrap();
    MailService::new(
        store.clone(),
        transport,
        "tokengate <no-reply@example.com>".parse().unwrap(),
        Arc::new(vault),
        clock,
    )
}

fn content(n: usize) -> Content {
    Content {
        subject: format!("Message {n}"),
        text: format!("Plain text of message {n}: https://auth.example.com/account/verify#token=abc{n}"),
        html: format!(
            "<p>HTML of message {n}: <a href=\"https://auth.example.com/account/verify#token=abc{n}\">verify</a></p>"
        ),
    }
}

async fn queue(store: &Arc<dyn Store>, mail: &MailService, clock: &ManualClock, n: usize) {
    let to = Email::parse(&format!("user{n}@example.com")).unwrap();
    let message = mail.message(&to, "notice", content(n)).unwrap();
    store
        .enqueue_mail(vec![message], tokengate::domain::UnixTime(clock.now_secs()))
        .await
        .unwrap();
}

#[per_backend]
async fn each_message_arrives_once_as_a_mail_client_reads_it(backend: common::Backend) {
    let Some((store, _keep)) = open(backend).await else {
        return;
    };
    let sink = SmtpSink::start();
    let clock = ManualClock::new();
    let mail = service(&store, &sink, Vault::default(), Arc::new(clock.clone()));
    for n in 0..3 {
        queue(&store, &mail, &clock, n).await;
    }
    let round = mail.deliver_due().await.unwrap();
    assert_eq!(round.sent, 3, "{round:?}");
    assert_eq!(mail.deliver_due().await.unwrap().sent, 0, "nothing twice");
    let got = sink.wait_for(3, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 3);
    for r in &got {
        let n: usize = r.to[0]
            .trim_start_matches("user")
            .trim_end_matches("@example.com")
            .parse()
            .unwrap();
        assert_eq!(r.from, "no-reply@example.com");
        let m = r.parsed();
        assert_eq!(m.subject(), Some(format!("Message {n}").as_str()));
        assert_eq!(
            m.from().unwrap().first().unwrap().address(),
            Some("no-reply@example.com")
        );
        assert!(m.content_type().is_some_and(|c| c.subtype() == Some("alternative")));
        assert!(m.body_text(0).unwrap().contains(&format!("token=abc{n}")));
        assert!(m.body_html(0).unwrap().contains(&format!("token=abc{n}")));
    }
    // Delivered: recorded (that its body is emptied is the store contract's test).
    let listed = store.list_mail(false, 10).await.unwrap();
    assert!(listed.iter().all(|m| m.sent_at.is_some() && m.attempts == 1));
    assert_eq!(store.outbox_stats().await.unwrap().queued, 0);
}

#[per_backend]
async fn a_server_that_says_try_later_gets_the_message_after_the_backoff(backend: common::Backend) {
    let Some((store, _keep)) = open(backend).await else {
        return;
    };
    let sink = SmtpSink::start();
    let clock = ManualClock::new();
    let mail = service(&store, &sink, Vault::default(), Arc::new(clock.clone()));
    queue(&store, &mail, &clock, 7).await;
    sink.answer(Answer::TryLater);
    let round = mail.deliver_due().await.unwrap();
    assert_eq!((round.sent, round.retried), (0, 1));
    let waiting = store.list_mail(false, 10).await.unwrap();
    assert!(waiting[0].last_error.as_deref().unwrap().contains("451"), "{waiting:?}");
    // Back up, but the retry is not due yet.
    sink.answer(Answer::Accept);
    clock.advance(29);
    assert_eq!(mail.deliver_due().await.unwrap().sent, 0);
    clock.advance(1);
    assert_eq!(mail.deliver_due().await.unwrap().sent, 1);
    let got = sink.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].parsed().subject(), Some("Message 7"));
    assert_eq!(store.list_mail(false, 10).await.unwrap()[0].attempts, 2);
}

#[per_backend]
async fn a_permanent_refusal_is_kept_and_queued_again_by_an_operator(backend: common::Backend) {
    let Some((store, _keep)) = open(backend).await else {
        return;
    };
    let sink = SmtpSink::start();
    let clock = ManualClock::new();
    let mail = service(&store, &sink, Vault::default(), Arc::new(clock.clone()));
    queue(&store, &mail, &clock, 1).await;
    sink.answer(Answer::NoMailbox);
    assert_eq!(mail.deliver_due().await.unwrap().given_up, 1);
    let failed = store.list_mail(true, 10).await.unwrap();
    assert_eq!(failed.len(), 1);
    assert!(failed[0].last_error.as_deref().unwrap().contains("550"), "{failed:?}");
    // Never tried again on its own.
    clock.advance(86_400);
    assert_eq!(mail.deliver_due().await.unwrap(), Default::default());
    sink.answer(Answer::Accept);
    let now = tokengate::domain::UnixTime(clock.now_secs());
    assert_eq!(store.retry_mail(Some(failed[0].id), now).await.unwrap(), 1);
    assert_eq!(mail.deliver_due().await.unwrap().sent, 1);
    assert_eq!(sink.wait_for(1, Duration::from_secs(5)).await.len(), 1);
}

#[per_backend]
async fn a_queued_message_is_sealed_when_the_server_seals(backend: common::Backend) {
    let Some((store, _keep)) = open(backend).await else {
        return;
    };
    let sink = SmtpSink::start();
    let clock = ManualClock::new();
    let key = EncryptionKey::from_base64("Hk4b9q7gN1f3nYvZbS0eJt2cQ8wXr5uLmA6pD0kHs1E=").unwrap();
    let mail = service(
        &store,
        &sink,
        Vault::new(Some(key), Vec::new()),
        Arc::new(clock.clone()),
    );
    queue(&store, &mail, &clock, 3).await;
    // What the database holds: sealed, the link nowhere in it.
    let now = tokengate::domain::UnixTime(clock.now_secs());
    let claimed = store.claim_mail(now, now, 10).await.unwrap();
    assert!(sealed_with(claimed[0].message.as_bytes()).is_some());
    assert!(!claimed[0].message.contains("token=abc3"));
    // (That claim's lease ends at once: the sender takes it over.)
    clock.advance(1);
    assert_eq!(mail.deliver_due().await.unwrap().sent, 1);
    let got = sink.wait_for(1, Duration::from_secs(5)).await;
    assert!(got[0].parsed().body_text(0).unwrap().contains("token=abc3"));
}

#[per_backend]
async fn two_senders_on_one_database_deliver_each_message_once(backend: common::Backend) {
    let Some((store, _keep)) = open(backend).await else {
        return;
    };
    let sink = SmtpSink::start();
    let clock = ManualClock::new();
    let a = Arc::new(service(&store, &sink, Vault::default(), Arc::new(clock.clone())));
    let b = Arc::new(service(&store, &sink, Vault::default(), Arc::new(clock.clone())));
    const N: usize = 40;
    for n in 0..N {
        queue(&store, &a, &clock, n).await;
    }
    let run = |m: Arc<MailService>| {
        tokio::spawn(async move {
            let mut sent = 0;
            loop {
                match m.deliver_due().await {
                    Ok(r) if r.sent == 0 => return sent,
                    Ok(r) => sent += r.sent,
                    // A serialisation refusal: the next round goes on.
                    Err(tokengate::store::StoreError::Unavailable(_)) => {}
                    Err(e) => panic!("{e}"),
                }
            }
        })
    };
    let (sa, sb) = (run(a.clone()), run(b.clone()));
    let (sa, sb) = (sa.await.unwrap(), sb.await.unwrap());
    assert_eq!(sa + sb, N, "a: {sa}, b: {sb}");
    let got = sink.wait_for(N, Duration::from_secs(10)).await;
    let mut to: Vec<String> = got.iter().map(|r| r.to[0].clone()).collect();
    to.sort();
    to.dedup();
    assert_eq!(to.len(), N, "each message once");
    assert_eq!(got.len(), N);
}

#[per_backend]
async fn an_instance_without_the_key_leaves_a_sealed_message_to_one_with_it(backend: common::Backend) {
    let Some((store, _keep)) = open(backend).await else {
        return;
    };
    let sink = SmtpSink::start();
    let clock = ManualClock::new();
    let key = || EncryptionKey::from_base64("Hk4b9q7gN1f3nYvZbS0eJt2cQ8wXr5uLmA6pD0kHs1E=").unwrap();
    let with_key = service(
        &store,
        &sink,
        Vault::new(Some(key()), Vec::new()),
        Arc::new(clock.clone()),
    );
    let without = service(&store, &sink, Vault::default(), Arc::new(clock.clone()));
    queue(&store, &with_key, &clock, 5).await;
    // No key here: tried again later, not given up on.
    let round = without.deliver_due().await.unwrap();
    assert_eq!((round.retried, round.given_up), (1, 0), "{round:?}");
    clock.advance(30);
    assert_eq!(with_key.deliver_due().await.unwrap().sent, 1);
    assert_eq!(sink.wait_for(1, Duration::from_secs(5)).await.len(), 1);

    // A body in the clear where the server seals was not queued by it: never sent.
    queue(&store, &without, &clock, 6).await;
    assert_eq!(with_key.deliver_due().await.unwrap().given_up, 1);
    assert_eq!(sink.received().len(), 1);
}
