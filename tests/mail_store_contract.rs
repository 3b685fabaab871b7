//! The storage contract of one-time mail tokens and the mail outbox, on `Arc<dyn Store>`
//! as the server opens it, for every backend: a token is written with its mail or not at
//! all, is spent once (also by 20 at once), dies with a newer one of its purpose, with
//! its expiry, with a password change; what each redemption writes, and nothing when it
//! is refused; the outbox hands each message to one sender, fences a sender whose claim
//! ran out, retries, gives up, and is re-queued by an operator.

mod common;

use std::sync::Arc;

use common::stores::{open, session, session_at_stamp, user};
use tokengate::crypto::passwords::PasswordHashString;
use tokengate::crypto::tokens::{OneTimeToken, OneTimeTokenHash};
use tokengate::domain::{Email, MailId, TokenPurpose, UnixTime, UserId};
use tokengate::store::{
    Delivery, NewMail, NewOneTimeToken, Redeem, Redemption, Revoked, Store, StoreError, UserUpdate, UserWrite,
};
use tokengate_test_macros::per_backend;

const T0: UnixTime = UnixTime(1_800_000_000);
const TTL: i64 = 1800;

fn mail_to(to: &str, kind: &'static str) -> NewMail {
    NewMail {
        id: MailId::new(),
        recipient: Email::parse(to).unwrap(),
        kind,
        message: format!("To: {to}\r\nSubject: {kind}\r\n\r\nthe link\r\n"),
    }
}

/// Issue a token of `purpose` to `user` (stamp `stamp`) for `email`, with one mail.
async fn issue(
    store: &dyn Store,
    user: UserId,
    purpose: TokenPurpose,
    email: &str,
    stamp: i64,
    now: UnixTime,
) -> (bool, OneTimeTokenHash) {
    let (_, hash) = OneTimeToken::generate().unwrap();
    let issued = store
        .issue_one_time(NewOneTimeToken {
            hash: hash.clone(),
            purpose,
            user,
            email: Email::parse(email).unwrap(),
            expected_stamp: stamp,
            now,
            expires_at: UnixTime(now.0 + TTL),
            mails: vec![mail_to(email, purpose.as_str())],
            context: None,
            replaces_older: true,
        })
        .await
        .unwrap();
    (issued, hash)
}

/// A redemption as auth asks for it: a verification survives a stamp change, the rest not.
fn redeem(hash: &OneTimeTokenHash, effect: Redemption, now: UnixTime) -> Redeem {
    Redeem {
        hash: hash.clone(),
        check_stamp: effect.purpose() != TokenPurpose::VerifyEmail,
        now,
        effect,
        mails: Vec::new(),
    }
}

/// A sign-in as auth asks for it: with the password an unproven address's account gets.
fn sign_in() -> Redemption {
    Redemption::SignIn {
        unproven_password: Some(unknown_password()),
    }
}

fn unknown_password() -> PasswordHashString {
    PasswordHashString("$argon2id$v=19$m=8,t=1,p=1$dW5rbm93bg$dW5rbm93bmhhc2g".into())
}

async fn queued(store: &dyn Store) -> u64 {
    store.outbox_stats().await.unwrap().queued
}

#[per_backend]
async fn a_token_is_stored_with_its_mail_and_spent_once(backend: common::Backend) {
    let Some((store, _keep)) = open(backend).await else {
        return;
    };
    let alice = user(store.as_ref(), "alice", T0).await;
    let (issued, hash) = issue(
        store.as_ref(),
        alice,
        TokenPurpose::VerifyEmail,
        "alice@example.com",
        0,
        T0,
    )
    .await;
    assert!(issued);
    assert_eq!(queued(store.as_ref()).await, 1, "the mail is queued with the token");
    let stored = store.one_time_token(&hash).await.unwrap().expect("stored");
    assert_eq!(stored.purpose, TokenPurpose::VerifyEmail);
    assert_eq!(stored.user, alice);
    assert_eq!(stored.used_at, None);

    // Another purpose's redemption does not spend it.
    let other = redeem(&hash, sign_in(), T0);
    assert!(store.redeem_one_time(other).await.unwrap().is_none());
    let at = UnixTime(T0.0 + 60);
    let done = store
        .redeem_one_time(redeem(&hash, Redemption::VerifyEmail, at))
        .await
        .unwrap()
        .expect("redeemed");
    assert!(done.user.email_verified);
    assert!(done.revoked.is_empty());
    assert_eq!(store.one_time_token(&hash).await.unwrap().unwrap().used_at, Some(at));
    // Spent: never again.
    let again = redeem(&hash, Redemption::VerifyEmail, at);
    assert!(store.redeem_one_time(again).await.unwrap().is_none());
    // The cache of every instance forgets the user: a log row.
    let log = store.revocations_after(0).await.unwrap();
    assert!(log.iter().any(|r| r.what == Revoked::User(alice)), "{log:?}");
}

#[per_backend]
async fn a_token_dies_with_its_expiry_and_with_a_newer_one(backend: common::Backend) {
    let Some((store, _keep)) = open(backend).await else {
        return;
    };
    let bob = user(store.as_ref(), "bob", T0).await;
    let (first_issued, first) = issue(store.as_ref(), bob, TokenPurpose::MagicLink, "bob@example.com", 0, T0).await;
    let (second_issued, second) = issue(store.as_ref(), bob, TokenPurpose::MagicLink, "bob@example.com", 0, T0).await;
    assert!(first_issued && second_issued);
    // A verification in flight is another purpose: untouched by the newer link.
    let (_, verify) = issue(store.as_ref(), bob, TokenPurpose::VerifyEmail, "bob@example.com", 0, T0).await;
    let spend = |h: &OneTimeTokenHash, at| redeem(h, sign_in(), at);
    assert!(
        store.redeem_one_time(spend(&first, T0)).await.unwrap().is_none(),
        "older: dead"
    );
    assert_eq!(store.one_time_token(&verify).await.unwrap().unwrap().used_at, None);
    // Expired: refused at its expiry, nothing written.
    let expiry = UnixTime(T0.0 + TTL);
    assert!(store.redeem_one_time(spend(&second, expiry)).await.unwrap().is_none());
    assert_eq!(store.one_time_token(&second).await.unwrap().unwrap().used_at, None);
    assert!(
        store
            .redeem_one_time(spend(&second, UnixTime(expiry.0 - 1)))
            .await
            .unwrap()
            .is_some()
    );
    // The sign-in proved the address first: every other token of the user died with it.
    assert!(store.one_time_token(&verify).await.unwrap().unwrap().used_at.is_some());
}

#[per_backend]
async fn a_token_is_issued_and_redeemed_only_for_the_user_as_read(backend: common::Backend) {
    let Some((store, _keep)) = open(backend).await else {
        return;
    };
    let carol = user(store.as_ref(), "carol", T0).await;
    // A stamp that is not the user's: nothing written, no mail.
    let (issued, hash) = issue(
        store.as_ref(),
        carol,
        TokenPurpose::MagicLink,
        "carol@example.com",
        7,
        T0,
    )
    .await;
    assert!(!issued);
    assert!(store.one_time_token(&hash).await.unwrap().is_none());
    assert_eq!(queued(store.as_ref()).await, 0);

    let (_, magic) = issue(
        store.as_ref(),
        carol,
        TokenPurpose::MagicLink,
        "carol@example.com",
        0,
        T0,
    )
    .await;
    let (_, verify) = issue(
        store.as_ref(),
        carol,
        TokenPurpose::VerifyEmail,
        "carol@example.com",
        0,
        T0,
    )
    .await;
    // A role change moves the stamp: the magic link was issued to the user before it.
    let bump = UserUpdate {
        bump_stamp: true,
        ..UserUpdate::default()
    };
    assert!(matches!(
        store.update_user(carol, bump, None, T0).await.unwrap(),
        UserWrite::Done(_)
    ));
    let m = redeem(&magic, sign_in(), T0);
    assert!(store.redeem_one_time(m).await.unwrap().is_none());
    assert_eq!(
        store.one_time_token(&magic).await.unwrap().unwrap().used_at,
        None,
        "a refused redemption writes nothing"
    );
    // A verification needs only the same address.
    let v = redeem(&verify, Redemption::VerifyEmail, T0);
    assert!(store.redeem_one_time(v).await.unwrap().is_some());
}

#[per_backend]
async fn a_reset_kills_every_session_and_every_other_link_in_flight(backend: common::Backend) {
    let Some((store, _keep)) = open(backend).await else {
        return;
    };
    let dave = user(store.as_ref(), "dave", T0).await;
    let far = UnixTime(T0.0 + 86_400);
    let (s1, _) = session(store.as_ref(), dave, T0, far).await;
    let (s2, _) = session(store.as_ref(), dave, T0, far).await;
    let (_, reset) = issue(
        store.as_ref(),
        dave,
        TokenPurpose::ResetPassword,
        "dave@example.com",
        0,
        T0,
    )
    .await;
    let (_, magic) = issue(store.as_ref(), dave, TokenPurpose::MagicLink, "dave@example.com", 0, T0).await;
    let (_, verify) = issue(
        store.as_ref(),
        dave,
        TokenPurpose::VerifyEmail,
        "dave@example.com",
        0,
        T0,
    )
    .await;
    let before = store.revocations_after(0).await.unwrap().len();
    let new_hash = PasswordHashString("$argon2id$v=19$m=8,t=1,p=1$bmV3c2FsdA$bmV3aGFzaA".into());
    let mut r = redeem(&reset, Redemption::ResetPassword { hash: new_hash.clone() }, T0);
    r.mails.push(mail_to("dave@example.com", "password_changed"));
    let queued_before = queued(store.as_ref()).await;
    let done = store.redeem_one_time(r).await.unwrap().expect("redeemed");
    let mut revoked = done.revoked.clone();
    revoked.sort_by_key(|s| s.to_string());
    let mut expected = vec![s1, s2];
    expected.sort_by_key(|s| s.to_string());
    assert_eq!(revoked, expected);
    assert_eq!(done.user.password_hash, new_hash);
    assert_eq!(done.user.security_stamp, 1);
    assert!(done.user.email_verified, "the address the reset went to is proven");
    assert_eq!(
        queued(store.as_ref()).await,
        queued_before + 1,
        "the notice is queued with it"
    );
    // Two sessions and the user: three log rows.
    assert_eq!(store.revocations_after(0).await.unwrap().len(), before + 3);
    for s in [s1, s2] {
        let (session, _) = store.session_with_user(s).await.unwrap().unwrap();
        assert!(session.revoked_at.is_some());
    }
    // The magic link died with the old password; a verification did not.
    let m = redeem(&magic, sign_in(), T0);
    assert!(store.redeem_one_time(m).await.unwrap().is_none());
    assert_eq!(store.one_time_token(&verify).await.unwrap().unwrap().used_at, None);
}

#[per_backend]
async fn an_email_change_to_a_taken_address_writes_nothing(backend: common::Backend) {
    let Some((store, _keep)) = open(backend).await else {
        return;
    };
    let erin = user(store.as_ref(), "erin", T0).await;
    let (_, change) = issue(
        store.as_ref(),
        erin,
        TokenPurpose::ChangeEmail,
        "new-erin@example.com",
        0,
        T0,
    )
    .await;
    let (_, taken) = issue(
        store.as_ref(),
        erin,
        TokenPurpose::ChangeEmail,
        "frank@example.com",
        0,
        T0,
    )
    .await;
    // The newer request killed the first.
    let c = redeem(&change, Redemption::ChangeEmail, T0);
    assert!(store.redeem_one_time(c).await.unwrap().is_none());
    // Someone registered the address meanwhile.
    user(store.as_ref(), "frank", T0).await;
    let t = redeem(&taken, Redemption::ChangeEmail, T0);
    assert!(matches!(store.redeem_one_time(t).await, Err(StoreError::Conflict)));
    assert_eq!(store.one_time_token(&taken).await.unwrap().unwrap().used_at, None);
    let after = store.user_by_id(erin).await.unwrap().unwrap();
    assert_eq!(after.email.as_str(), "erin@example.com");

    let (_, ok) = issue(
        store.as_ref(),
        erin,
        TokenPurpose::ChangeEmail,
        "erin2@example.com",
        0,
        T0,
    )
    .await;
    let c = redeem(&ok, Redemption::ChangeEmail, T0);
    let done = store.redeem_one_time(c).await.unwrap().expect("changed");
    assert_eq!(done.user.email.as_str(), "erin2@example.com");
    assert!(done.user.email_verified);
    // A verification link to the old address proves nothing now.
    let (_, old) = issue(
        store.as_ref(),
        erin,
        TokenPurpose::VerifyEmail,
        "erin@example.com",
        0,
        T0,
    )
    .await;
    let v = redeem(&old, Redemption::VerifyEmail, T0);
    assert!(store.redeem_one_time(v).await.unwrap().is_none());
}

#[per_backend]
async fn concurrent_redemptions_of_one_token_spend_it_once(backend: common::Backend) {
    let Some((store, _keep)) = open(backend).await else {
        return;
    };
    let gina = user(store.as_ref(), "gina", T0).await;
    let (_, hash) = issue(store.as_ref(), gina, TokenPurpose::MagicLink, "gina@example.com", 0, T0).await;
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let store = Arc::clone(&store);
            let r = redeem(&hash, sign_in(), T0);
            tokio::spawn(async move { store.redeem_one_time(r).await })
        })
        .collect();
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(Some(_)) => won += 1,
            Ok(None) => {}
            // A serialisation refusal is a loss too (the client would be told to retry).
            Err(StoreError::Unavailable(_)) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(won, 1);
}

#[per_backend]
async fn the_outbox_hands_each_message_to_one_sender(backend: common::Backend) {
    let Some((store, _keep)) = open(backend).await else {
        return;
    };
    let mails: Vec<NewMail> = (0..10)
        .map(|i| mail_to(&format!("m{i}@example.com"), "notice"))
        .collect();
    store.enqueue_mail(mails, T0).await.unwrap();
    assert_eq!(queued(store.as_ref()).await, 10);
    let lease = UnixTime(T0.0 + 60);
    // Four senders at once, three messages each at most: every message once.
    let claims: Vec<_> = (0..4)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { store.claim_mail(T0, lease, 3).await })
        })
        .collect();
    let mut seen = Vec::new();
    for c in claims {
        match c.await.unwrap() {
            Ok(batch) => seen.extend(batch),
            Err(StoreError::Unavailable(_)) => {}
            Err(e) => panic!("{e}"),
        }
    }
    let mut ids: Vec<String> = seen.iter().map(|m| m.id.to_string()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), seen.len(), "no message claimed twice");
    assert!(seen.iter().all(|m| m.attempt == 1 && m.message.contains("the link")));
    // The rest, by one more sender; then nothing is left to claim while the leases hold.
    let rest = store.claim_mail(T0, lease, 100).await.unwrap();
    assert_eq!(seen.len() + rest.len(), 10);
    assert!(
        store
            .claim_mail(UnixTime(T0.0 + 59), lease, 100)
            .await
            .unwrap()
            .is_empty()
    );
    let all: Vec<_> = seen.into_iter().chain(rest).collect();

    // Delivered: gone from the queue, its body not kept.
    let first = &all[0];
    assert!(
        store
            .finish_mail(first.id, first.claim, Delivery::Sent, T0)
            .await
            .unwrap()
    );
    // A retry waits for its time.
    let second = &all[1];
    let retry = Delivery::Retry {
        error: "421 try later".into(),
        retry_at: UnixTime(T0.0 + 30),
    };
    assert!(store.finish_mail(second.id, second.claim, retry, T0).await.unwrap());
    // What a sender waits for: the retry, due before the other claims run out.
    assert_eq!(store.outbox_stats().await.unwrap().next_due, Some(UnixTime(T0.0 + 30)));
    assert!(
        store
            .claim_mail(UnixTime(T0.0 + 29), UnixTime(T0.0 + 90), 100)
            .await
            .unwrap()
            .is_empty()
    );
    let again = store
        .claim_mail(UnixTime(T0.0 + 30), UnixTime(T0.0 + 90), 100)
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].id, again[0].attempt), (second.id, 2));
    // Given up: listed with its error, and queued again by an operator.
    let third = &all[2];
    let give_up = Delivery::GiveUp {
        error: "550 no such user".into(),
    };
    assert!(store.finish_mail(third.id, third.claim, give_up, T0).await.unwrap());
    let failed = store.list_mail(true, 10).await.unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].id, third.id);
    assert_eq!(failed[0].last_error.as_deref(), Some("550 no such user"));
    assert_eq!(store.outbox_stats().await.unwrap().failed, 1);
    assert_eq!(store.retry_mail(Some(third.id), UnixTime(T0.0 + 40)).await.unwrap(), 1);
    assert!(store.list_mail(true, 10).await.unwrap().is_empty());

    // A claim that ran out: another sender takes the message, and the first sender's
    // late answer is not recorded.
    let fourth = &all[3];
    let later = UnixTime(T0.0 + 61);
    let taken = store.claim_mail(later, UnixTime(later.0 + 60), 100).await.unwrap();
    let retaken = taken.iter().find(|m| m.id == fourth.id).expect("taken over");
    assert_eq!(retaken.attempt, 2);
    assert!(
        !store
            .finish_mail(fourth.id, fourth.claim, Delivery::Sent, later)
            .await
            .unwrap()
    );
    assert!(
        store
            .finish_mail(fourth.id, retaken.claim, Delivery::Sent, later)
            .await
            .unwrap()
    );
    let sent = store.list_mail(false, 100).await.unwrap();
    let entry = sent.iter().find(|m| m.id == fourth.id).unwrap();
    assert_eq!(entry.sent_at, Some(later));

    // A purge drops delivered mail past the cutoff, and expired tokens; the rest stays.
    let stats = store.outbox_stats().await.unwrap();
    store.purge_expired(UnixTime(later.0 + 1)).await.unwrap();
    let left = store.list_mail(false, 100).await.unwrap();
    assert!(left.iter().all(|m| m.sent_at.is_none()), "{left:?}");
    assert_eq!(store.outbox_stats().await.unwrap().queued, stats.queued);
}

#[per_backend]
async fn a_purge_drops_expired_tokens_and_keeps_live_ones(backend: common::Backend) {
    let Some((store, _keep)) = open(backend).await else {
        return;
    };
    let hank = user(store.as_ref(), "hank", T0).await;
    let (_, old) = issue(
        store.as_ref(),
        hank,
        TokenPurpose::VerifyEmail,
        "hank@example.com",
        0,
        T0,
    )
    .await;
    let later = UnixTime(T0.0 + 2 * TTL);
    let (_, live) = issue(
        store.as_ref(),
        hank,
        TokenPurpose::MagicLink,
        "hank@example.com",
        0,
        later,
    )
    .await;
    store.purge_expired(UnixTime(later.0 - 1)).await.unwrap();
    assert!(store.one_time_token(&old).await.unwrap().is_none());
    assert!(store.one_time_token(&live).await.unwrap().is_some());
}

#[per_backend]
async fn a_change_of_address_kills_every_link_in_flight(backend: common::Backend) {
    let Some((store, _keep)) = open(backend).await else {
        return;
    };
    let ivan = user(store.as_ref(), "ivan", T0).await;
    let old = "ivan@example.com";
    let (_, reset) = issue(store.as_ref(), ivan, TokenPurpose::ResetPassword, old, 0, T0).await;
    let (_, magic) = issue(store.as_ref(), ivan, TokenPurpose::MagicLink, old, 0, T0).await;
    let (_, verify) = issue(store.as_ref(), ivan, TokenPurpose::VerifyEmail, old, 0, T0).await;
    let (_, change) = issue(
        store.as_ref(),
        ivan,
        TokenPurpose::ChangeEmail,
        "ivan-new@example.com",
        0,
        T0,
    )
    .await;
    let done = store
        .redeem_one_time(redeem(&change, Redemption::ChangeEmail, T0))
        .await
        .unwrap()
        .expect("changed");
    assert_eq!(done.user.email.as_str(), "ivan-new@example.com");
    assert_eq!(done.user.security_stamp, 1, "logins in flight are void");
    // Whoever reads the old mailbox holds links to it: none of them works now.
    let hash = PasswordHashString("$argon2id$v=19$m=8,t=1,p=1$eHh4eHh4eHg$eHh4eHh4eHg".into());
    for r in [
        redeem(&reset, Redemption::ResetPassword { hash }, T0),
        redeem(&magic, sign_in(), T0),
        redeem(&verify, Redemption::VerifyEmail, T0),
    ] {
        assert!(store.redeem_one_time(r).await.unwrap().is_none());
    }
    // A link issued for the old address after the change (a stale read) opens nothing
    // either, even with the current stamp.
    let (issued, late) = issue(store.as_ref(), ivan, TokenPurpose::MagicLink, old, 1, T0).await;
    assert!(issued);
    assert!(
        store
            .redeem_one_time(redeem(&late, sign_in(), T0))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.one_time_token(&late).await.unwrap().unwrap().used_at, None);
}

#[per_backend]
async fn a_refused_reset_writes_nothing(backend: common::Backend) {
    let Some((store, _keep)) = open(backend).await else {
        return;
    };
    let judy = user(store.as_ref(), "judy", T0).await;
    let (s, _) = session(store.as_ref(), judy, T0, UnixTime(T0.0 + 86_400)).await;
    let (_, reset) = issue(
        store.as_ref(),
        judy,
        TokenPurpose::ResetPassword,
        "judy@example.com",
        0,
        T0,
    )
    .await;
    let bump = UserUpdate {
        bump_stamp: true,
        ..UserUpdate::default()
    };
    store.update_user(judy, bump, None, T0).await.unwrap();
    let (log, mail, before) = (
        store.revocations_after(0).await.unwrap().len(),
        queued(store.as_ref()).await,
        store.user_by_id(judy).await.unwrap().unwrap(),
    );
    let hash = PasswordHashString("$argon2id$v=19$m=8,t=1,p=1$eXl5eXl5eXk$eXl5eXl5eXk".into());
    let mut r = redeem(&reset, Redemption::ResetPassword { hash }, T0);
    r.mails.push(mail_to("judy@example.com", "password_changed"));
    assert!(
        store.redeem_one_time(r).await.unwrap().is_none(),
        "issued before the stamp moved"
    );
    let after = store.user_by_id(judy).await.unwrap().unwrap();
    assert_eq!(after.password_hash, before.password_hash);
    assert_eq!(after.security_stamp, before.security_stamp);
    assert!(
        store
            .session_with_user(s)
            .await
            .unwrap()
            .unwrap()
            .0
            .revoked_at
            .is_none()
    );
    assert_eq!(store.revocations_after(0).await.unwrap().len(), log);
    assert_eq!(queued(store.as_ref()).await, mail);
}

#[per_backend]
async fn concurrent_issues_leave_one_live_token(backend: common::Backend) {
    let Some((store, _keep)) = open(backend).await else {
        return;
    };
    let kate = user(store.as_ref(), "kate", T0).await;
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let to = format!("kate{i}@example.com");
                issue(store.as_ref(), kate, TokenPurpose::ChangeEmail, &to, 0, T0).await
            })
        })
        .collect();
    let mut hashes = Vec::new();
    for t in tasks {
        let (issued, hash) = t.await.unwrap();
        assert!(issued);
        hashes.push(hash);
    }
    let mut live = 0;
    for hash in &hashes {
        if store.one_time_token(hash).await.unwrap().unwrap().used_at.is_none() {
            live += 1;
        }
    }
    assert_eq!(live, 1, "a newer request kills the older ones, also when they race");
}

#[per_backend]
async fn a_delivered_body_is_not_kept_and_a_stale_claim_never_records(backend: common::Backend) {
    let Some((store, _keep, url)) = common::stores::open_at(backend).await else {
        return;
    };
    let sent = mail_to("l1@example.com", "notice");
    let failing = mail_to("l2@example.com", "notice");
    store
        .enqueue_mail(vec![sent.clone(), failing.clone()], T0)
        .await
        .unwrap();
    let claimed = store.claim_mail(T0, UnixTime(T0.0 + 60), 10).await.unwrap();
    let first = claimed.iter().find(|m| m.id == sent.id).unwrap();
    assert!(
        store
            .finish_mail(first.id, first.claim, Delivery::Sent, T0)
            .await
            .unwrap()
    );
    let body = common::stores::text_of(
        &url,
        &format!("SELECT message FROM mail_outbox WHERE id = '{}'", sent.id),
    )
    .await;
    assert_eq!(body.as_deref(), Some(""), "the link is gone from the database");

    // The other's claim runs out; a second sender gives up on it; an operator queues it
    // again; a third sender claims it. The first sender's late answer changes nothing.
    let stale = claimed.iter().find(|m| m.id == failing.id).unwrap().clone();
    let later = UnixTime(T0.0 + 61);
    let second = store.claim_mail(later, UnixTime(later.0 + 60), 10).await.unwrap();
    assert_eq!(second.len(), 1);
    let give_up = Delivery::GiveUp { error: "550".into() };
    assert!(
        store
            .finish_mail(second[0].id, second[0].claim, give_up, later)
            .await
            .unwrap()
    );
    assert_eq!(store.retry_mail(None, later).await.unwrap(), 1);
    let third = store.claim_mail(later, UnixTime(later.0 + 60), 10).await.unwrap();
    assert_eq!(third[0].attempt, 1, "an operator's retry starts the count over");
    assert!(third[0].claim > second[0].claim && second[0].claim > stale.claim);
    assert!(
        !store
            .finish_mail(stale.id, stale.claim, Delivery::Sent, later)
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_mail(later, UnixTime(later.0 + 60), 10)
            .await
            .unwrap()
            .is_empty(),
        "still held"
    );
    assert!(
        store
            .finish_mail(third[0].id, third[0].claim, Delivery::Sent, later)
            .await
            .unwrap()
    );
}

#[per_backend]
async fn a_sign_in_that_first_proves_an_address_voids_what_its_registrant_set(backend: common::Backend) {
    let Some((store, _keep)) = open(backend).await else {
        return;
    };
    let kim = user(store.as_ref(), "kim", T0).await;
    let far = UnixTime(T0.0 + 86_400);
    // Whoever registered the address first: a session, and a reset link to the address.
    let (squatter, _) = session(store.as_ref(), kim, T0, far).await;
    let (_, reset) = issue(
        store.as_ref(),
        kim,
        TokenPurpose::ResetPassword,
        "kim@example.com",
        0,
        T0,
    )
    .await;
    let (_, first) = issue(store.as_ref(), kim, TokenPurpose::MagicLink, "kim@example.com", 0, T0).await;
    // Without a password to put in place, an unproven address's sign-in is refused.
    let bare = redeem(
        &first,
        Redemption::SignIn {
            unproven_password: None,
        },
        T0,
    );
    assert!(store.redeem_one_time(bare).await.unwrap().is_none());
    assert_eq!(store.one_time_token(&first).await.unwrap().unwrap().used_at, None);

    let done = store
        .redeem_one_time(redeem(&first, sign_in(), T0))
        .await
        .unwrap()
        .expect("signed in");
    assert!(done.user.email_verified);
    assert_eq!(
        done.user.password_hash,
        unknown_password(),
        "the registrant's password is void"
    );
    assert_eq!(done.user.security_stamp, 1);
    assert_eq!(done.revoked, vec![squatter]);
    let (dead, _) = store.session_with_user(squatter).await.unwrap().unwrap();
    assert!(dead.revoked_at.is_some());
    assert!(
        store.one_time_token(&reset).await.unwrap().unwrap().used_at.is_some(),
        "links in flight die"
    );

    // Proven now: the next sign-in changes nothing else, and needs no password.
    let (mine, _) = session_at_stamp(store.as_ref(), kim, 1, T0, far).await;
    let (_, second) = issue(store.as_ref(), kim, TokenPurpose::MagicLink, "kim@example.com", 1, T0).await;
    let again = redeem(
        &second,
        Redemption::SignIn {
            unproven_password: None,
        },
        T0,
    );
    let done = store.redeem_one_time(again).await.unwrap().expect("signed in");
    assert!(done.revoked.is_empty());
    assert_eq!(done.user.security_stamp, 1);
    let (live, _) = store.session_with_user(mine).await.unwrap().unwrap();
    assert!(live.revoked_at.is_none());
}

/// An MFA token for `user` (stamp 0) at `T0`, 5 minutes, mailed to no one.
async fn issue_mfa(store: &dyn Store, user: UserId, context: Option<&str>) -> OneTimeTokenHash {
    let (_, hash) = OneTimeToken::generate().unwrap();
    let issued = store
        .issue_one_time(NewOneTimeToken {
            hash: hash.clone(),
            purpose: TokenPurpose::MfaLogin,
            user,
            email: Email::parse("mia@example.com").unwrap(),
            expected_stamp: 0,
            now: T0,
            expires_at: UnixTime(T0.0 + 300),
            mails: Vec::new(),
            context: context.map(str::to_owned),
            replaces_older: false,
        })
        .await
        .unwrap();
    assert!(issued);
    hash
}

/// An MFA token: attempts are counted against it by one conditional write each, up to
/// the caller's maximum; it is spent once; expiry ends it; its context comes back as
/// written.
#[per_backend]
async fn an_mfa_token_counts_its_attempts_and_is_spent_once(backend: common::Backend) {
    let Some((store, _keep)) = open(backend).await else {
        return;
    };
    let u = user(store.as_ref(), "mia", T0).await;
    let hash = issue_mfa(store.as_ref(), u, Some("{\"net\":\"127.0.0.1\"}")).await;
    assert_eq!(queued(store.as_ref()).await, 0, "an MFA token is never mailed");
    for n in 1..=3 {
        let t = store
            .attempt_one_time(&hash, TokenPurpose::MfaLogin, T0, 3)
            .await
            .unwrap()
            .expect("within the attempts");
        assert_eq!(t.attempts, n);
        assert_eq!(t.context.as_deref(), Some("{\"net\":\"127.0.0.1\"}"));
    }
    let attempt = async |h: &OneTimeTokenHash, purpose, at, max| {
        store.attempt_one_time(h, purpose, at, max).await.unwrap().is_some()
    };
    let spend = async |h: &OneTimeTokenHash, purpose, at| store.spend_one_time(h, purpose, at).await.unwrap().is_some();
    assert!(!attempt(&hash, TokenPurpose::MfaLogin, T0, 3).await, "used up");
    // Of another purpose: not this token.
    assert!(!attempt(&hash, TokenPurpose::MagicLink, T0, 9).await);
    assert!(!spend(&hash, TokenPurpose::MagicLink, T0).await);
    // Spent once (its attempts used up do not stop the spend: the caller decides).
    assert!(spend(&hash, TokenPurpose::MfaLogin, T0).await);
    assert!(!spend(&hash, TokenPurpose::MfaLogin, T0).await);
    assert!(!attempt(&hash, TokenPurpose::MfaLogin, T0, 9).await);
    // Expired: neither.
    let late = issue_mfa(store.as_ref(), u, None).await;
    let at_end = UnixTime(T0.0 + 300);
    assert!(!attempt(&late, TokenPurpose::MfaLogin, at_end, 9).await);
    assert!(!spend(&late, TokenPurpose::MfaLogin, at_end).await);
}

/// The same first proof voids second factors its registrant enrolled: the address's
/// owner signs in to an account whose MFA is off and whose codes are gone.
#[per_backend]
async fn a_first_proof_also_voids_the_registrants_second_factors(backend: common::Backend) {
    use tokengate::crypto::recovery_codes::RecoveryCode;
    use tokengate::store::ConfirmTotp;
    let Some((store, _keep)) = open(backend).await else {
        return;
    };
    let kim = user(store.as_ref(), "kim", T0).await;
    let (squatter, _) = session(store.as_ref(), kim, T0, UnixTime(T0.0 + 86_400)).await;
    store.begin_totp(kim, b"theirs".to_vec(), T0).await.unwrap();
    let (_, codes) = RecoveryCode::generate_set().unwrap();
    let confirm = ConfirmTotp {
        user: kim,
        secret: b"theirs".to_vec(),
        step: 1,
        codes: codes.clone(),
        keep: squatter,
        keep_auth: tokengate::domain::Authentication::new(T0, &[tokengate::domain::AuthMethod::Pwd]),
        now: T0,
        mails: Vec::new(),
    };
    store.confirm_totp(confirm).await.unwrap().unwrap();
    let stamp = store.user_by_id(kim).await.unwrap().unwrap().security_stamp;
    let (_, link) = issue(
        store.as_ref(),
        kim,
        TokenPurpose::MagicLink,
        "kim@example.com",
        stamp,
        T0,
    )
    .await;
    let done = store
        .redeem_one_time(redeem(&link, sign_in(), T0))
        .await
        .unwrap()
        .expect("signed in");
    assert!(!done.user.mfa_enabled);
    assert_eq!(store.second_factors(kim).await.unwrap(), Default::default());
    assert!(!store.spend_recovery_code(kim, &codes[0], T0).await.unwrap());
    assert_eq!(done.revoked, vec![squatter]);
}
