//! The storage contract, on `Arc<dyn Store>` as the server opens it, for every backend:
//! what a purge removes and keeps, that every revoking write leaves a row in the
//! revocation log (the log is how the other instances learn of it), that a refused
//! guarded change writes nothing, and that concurrent rotations of one token spend it
//! once.

mod common;

use common::stores::{open, session, user};

use std::sync::Arc;
use tokengate_test_macros::per_backend;

use tokengate::crypto::tokens::RefreshToken;
use tokengate::domain::{Role, UnixTime};
use tokengate::store::{RotateRequest, Rotation, Store, StoredKey, UserUpdate, UserWrite};

fn key(kid: &str, active: bool, now: UnixTime, retires_at: Option<UnixTime>) -> StoredKey {
    StoredKey {
        kid: kid.into(),
        algorithm: tokengate::crypto::keys::SigningAlgorithm::EdDsa,
        private_der: vec![1, 2, 3],
        active,
        created_at: now,
        signs_from: now,
        retires_at,
    }
}

#[per_backend]
async fn purge_removes_what_expired_and_keeps_what_lives(backend: common::Backend) {
    let Some((store, _keep)) = open(backend).await else {
        return;
    };
    let now = UnixTime(1_900_000_000);
    let alice = user(store.as_ref(), "alice", now).await;
    let (old, old_refresh) = session(store.as_ref(), alice, now, now.plus(100)).await;
    let (live, live_refresh) = session(store.as_ref(), alice, now, now.plus(10_000)).await;
    // Keys: one retired long ago, one retired but still verifying, the active one.
    store.add_active_key(key("k-old", true, now, None)).await.unwrap();
    store
        .rotate_key(key("k-mid", false, now, None), now, now.plus(50))
        .await
        .unwrap();
    store
        .rotate_key(key("k-new", false, now, None), now, now.plus(5_000))
        .await
        .unwrap();

    let removed = store.purge_expired(now.plus(1_000)).await.unwrap();
    assert!(removed >= 2, "the expired session and its refresh token: {removed}");
    assert!(
        store.session_with_user(old).await.unwrap().is_none(),
        "expired session purged"
    );
    assert!(
        store.refresh_token(&old_refresh).await.unwrap().is_none(),
        "its refresh token too"
    );
    assert!(
        store.session_with_user(live).await.unwrap().is_some(),
        "a live session stays"
    );
    assert!(
        store.refresh_token(&live_refresh).await.unwrap().is_some(),
        "and its token"
    );
    let kids: Vec<String> = store.signing_keys().await.unwrap().into_iter().map(|k| k.kid).collect();
    assert!(
        !kids.contains(&"k-old".to_owned()),
        "a key past retires_at goes: {kids:?}"
    );
    assert!(
        kids.contains(&"k-mid".to_owned()),
        "a key still verifying stays: {kids:?}"
    );
    assert!(kids.iter().any(|k| k.starts_with("k-new") || k == "k-new"), "{kids:?}");
}

#[per_backend]
async fn every_revoking_write_leaves_a_log_row(backend: common::Backend) {
    let Some((store, _keep)) = open(backend).await else {
        return;
    };
    let now = UnixTime(1_900_000_000);
    let alice = user(store.as_ref(), "alice", now).await;
    let bob = user(store.as_ref(), "bob", now).await;
    let rows = |store: Arc<dyn Store>| async move { store.revocations_after(0).await.unwrap().len() };
    let mut seen = rows(store.clone()).await;
    let mut expect_more = |what: &str, now_rows: usize| {
        assert!(
            now_rows > seen,
            "{what} left no revocation log row ({seen} -> {now_rows})"
        );
        seen = now_rows;
    };

    let (one, _) = session(store.as_ref(), alice, now, now.plus(10_000)).await;
    assert!(store.revoke_session(alice, one, now).await.unwrap());
    expect_more("revoke_session", rows(store.clone()).await);

    let (_, refresh) = session(store.as_ref(), alice, now, now.plus(10_000)).await;
    assert!(
        store
            .revoke_session_of_refresh(Some(alice), &refresh, now)
            .await
            .unwrap()
            .is_some()
    );
    expect_more("revoke_session_of_refresh", rows(store.clone()).await);

    session(store.as_ref(), alice, now, now.plus(10_000)).await;
    session(store.as_ref(), alice, now, now.plus(10_000)).await;
    assert_eq!(store.revoke_sessions(alice, None, now).await.unwrap().len(), 2);
    expect_more("revoke_sessions", rows(store.clone()).await);

    session(store.as_ref(), bob, now, now.plus(10_000)).await;
    store.delete_user(bob, None, now).await.unwrap();
    expect_more("delete_user", rows(store.clone()).await);

    // Old rows go with the purge, new ones stay.
    let all = store.revocations_after(0).await.unwrap();
    assert!(!all.is_empty());
    store.purge_revocations(UnixTime(0)).await.unwrap();
    assert_eq!(
        store.revocations_after(0).await.unwrap().len(),
        all.len(),
        "nothing is older than 1970"
    );
}

#[per_backend]
async fn a_last_holder_refusal_writes_nothing(backend: common::Backend) {
    let Some((store, _keep)) = open(backend).await else {
        return;
    };
    let now = UnixTime(1_900_000_000);
    let admin_role = Role::parse("admin").unwrap();
    let admin = user(store.as_ref(), "only_admin", now).await;
    let promote = UserUpdate {
        roles: Some(vec![admin_role.clone()]),
        ..UserUpdate::default()
    };
    assert!(matches!(
        store.update_user(admin, promote, Some(&admin_role), now).await.unwrap(),
        UserWrite::Done(_)
    ));
    let (live, _) = session(store.as_ref(), admin, now, now.plus(10_000)).await;
    let log_before = store.revocations_after(0).await.unwrap().len();

    // Demoting, deactivating (with its revocation) or deleting the one active admin is
    // refused, and every write the same transaction made before the check is undone.
    let demote = UserUpdate {
        roles: Some(Vec::new()),
        bump_stamp: true,
        ..UserUpdate::default()
    };
    let deactivate = UserUpdate {
        is_active: Some(false),
        bump_stamp: true,
        revoke_sessions: true,
        ..UserUpdate::default()
    };
    for change in [demote, deactivate] {
        assert!(matches!(
            store.update_user(admin, change, Some(&admin_role), now).await.unwrap(),
            UserWrite::LastHolder
        ));
    }
    assert!(matches!(
        store.delete_user(admin, Some(&admin_role), now).await.unwrap(),
        UserWrite::LastHolder
    ));
    let kept = store
        .user_by_id(admin)
        .await
        .unwrap()
        .expect("the admin is still there");
    assert_eq!(
        (kept.roles, kept.is_active, kept.security_stamp),
        (vec![admin_role.clone()], true, 0)
    );
    let (session, _) = store.session_with_user(live).await.unwrap().unwrap();
    assert_eq!(session.revoked_at, None, "the refused deactivation revoked nothing");
    assert_eq!(
        store.revocations_after(0).await.unwrap().len(),
        log_before,
        "and logged nothing"
    );

    // With a second active admin, the same change goes through.
    let other = user(store.as_ref(), "second_admin", now).await;
    let promote = UserUpdate {
        roles: Some(vec![admin_role.clone()]),
        ..UserUpdate::default()
    };
    store.update_user(other, promote, Some(&admin_role), now).await.unwrap();
    assert!(matches!(
        store.delete_user(admin, Some(&admin_role), now).await.unwrap(),
        UserWrite::Done(revoked) if revoked == vec![live]
    ));
}

#[per_backend]
async fn concurrent_rotations_of_one_token_spend_it_once(backend: common::Backend) {
    let Some((store, _keep)) = open(backend).await else {
        return;
    };
    let now = UnixTime(1_900_000_000);
    let alice = user(store.as_ref(), "alice", now).await;
    let (sid, first) = session(store.as_ref(), alice, now, now.plus(10_000)).await;
    let rotations = (0..20).map(|_| {
        let store = store.clone();
        let first = first.clone();
        tokio::spawn(async move {
            let successor = RefreshToken::generate().unwrap().1;
            let req = RotateRequest {
                presented: first,
                successor: successor.clone(),
                successor_expires_at: now.plus(5_000),
                now: now.plus(1),
            };
            (store.rotate_refresh(req).await.unwrap(), successor)
        })
    });
    let outcomes = futures_util::future::join_all(rotations).await;
    let mut spent = Vec::new();
    let mut reused = 0;
    for outcome in outcomes {
        match outcome.unwrap() {
            (Rotation::Spent { session, .. }, successor) => {
                assert_eq!(session.id, sid);
                spent.push(successor);
            }
            (Rotation::AlreadySpent { session_id, .. }, _) => {
                assert_eq!(session_id, sid);
                reused += 1;
            }
            (Rotation::Unknown, _) => panic!("a token of a live session read as unknown"),
        }
    }
    assert_eq!((spent.len(), reused), (1, 19), "exactly one rotation wins");
    // Only the winner's successor was stored, unspent; the losers' were not.
    let winner = store
        .refresh_token(&spent[0])
        .await
        .unwrap()
        .expect("the winner's successor");
    assert_eq!((winner.session_id, winner.spent), (sid, false));
    assert!(
        store
            .refresh_token(&first)
            .await
            .unwrap()
            .expect("the first token")
            .spent
    );
}

/// Second factors: a pending TOTP factor is replaced by a newer one and confirmed only
/// with the secret it was checked against; confirming turns MFA on, moves the stamp and
/// revokes every session but the one kept, with log rows; a step advances only forward;
/// a recovery code is spent once, and only its owner's; a new list kills the old one;
/// removal undoes it all and revokes again.
#[per_backend]
async fn second_factors_turn_on_and_off_in_one_transaction_each(backend: common::Backend) {
    use tokengate::crypto::recovery_codes::RecoveryCode;
    use tokengate::store::{ConfirmTotp, RemoveFactors, Revoked};
    let Some((store, _keep)) = open(backend).await else {
        return;
    };
    let now = UnixTime(1_900_000_000);
    let alice = user(store.as_ref(), "alice", now).await;
    let bob = user(store.as_ref(), "bob", now).await;
    let (kept, _) = session(store.as_ref(), alice, now, now.plus(10_000)).await;
    let (other, _) = session(store.as_ref(), alice, now, now.plus(10_000)).await;
    assert!(store.begin_totp(alice, b"first".to_vec(), now).await.unwrap());
    assert!(store.begin_totp(alice, b"second".to_vec(), now).await.unwrap());
    let state = store.second_factors(alice).await.unwrap();
    let pending = state.totp.clone().unwrap();
    assert_eq!(
        (pending.secret.as_slice(), pending.confirmed_at),
        (&b"second"[..], None)
    );
    let (codes, hashes) = RecoveryCode::generate_set().unwrap();
    let confirm = |secret: &[u8]| ConfirmTotp {
        user: alice,
        secret: secret.to_vec(),
        step: 100,
        codes: hashes.clone(),
        keep: kept,
        keep_auth: tokengate::domain::Authentication::new(now, &[tokengate::domain::AuthMethod::Pwd]),
        now,
        mails: Vec::new(),
    };
    // Checked against a secret replaced meanwhile: nothing written.
    assert_eq!(store.confirm_totp(confirm(b"first")).await.unwrap(), None);
    assert!(!store.user_by_id(alice).await.unwrap().unwrap().mfa_enabled);
    let log_before = store.revocations_after(0).await.unwrap().len();
    let revoked = store.confirm_totp(confirm(b"second")).await.unwrap().unwrap();
    assert_eq!(revoked, vec![other]);
    let after = store.user_by_id(alice).await.unwrap().unwrap();
    assert!(after.mfa_enabled);
    assert_eq!(after.security_stamp, 1);
    let log: Vec<_> = store.revocations_after(0).await.unwrap()[log_before..]
        .iter()
        .map(|r| r.what)
        .collect();
    assert!(
        log.contains(&Revoked::Session(other)) && log.contains(&Revoked::User(alice)),
        "{log:?}"
    );
    let live: Vec<_> = store
        .list_sessions(alice, now)
        .await
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(live, vec![kept]);
    // Confirmed: a new enrolment and a second confirmation write nothing.
    assert!(!store.begin_totp(alice, b"third".to_vec(), now).await.unwrap());
    assert_eq!(store.confirm_totp(confirm(b"second")).await.unwrap(), None);
    let state = store.second_factors(alice).await.unwrap();
    assert_eq!(state.totp.as_ref().unwrap().last_step, Some(100));
    assert_eq!(state.recovery_codes_left, 10);
    // Steps only move forward.
    assert!(!store.advance_totp_step(alice, 100).await.unwrap());
    assert!(!store.advance_totp_step(alice, 99).await.unwrap());
    assert!(store.advance_totp_step(alice, 101).await.unwrap());
    assert!(!store.advance_totp_step(bob, 500).await.unwrap(), "no factor, no step");
    // A code once, and only its owner's.
    assert!(!store.recovery_code_unused(bob, &hashes[0]).await.unwrap());
    assert!(store.recovery_code_unused(alice, &hashes[0]).await.unwrap());
    assert!(!store.spend_recovery_code(bob, &hashes[0], now).await.unwrap());
    assert!(store.spend_recovery_code(alice, &hashes[0], now).await.unwrap());
    assert!(!store.recovery_code_unused(alice, &hashes[0]).await.unwrap());
    assert!(!store.spend_recovery_code(alice, &hashes[0], now).await.unwrap());
    assert_eq!(store.second_factors(alice).await.unwrap().recovery_codes_left, 9);
    drop(codes);
    // A new list: the old codes die.
    let (_, fresh) = RecoveryCode::generate_set().unwrap();
    assert!(
        !store
            .replace_recovery_codes(bob, fresh.clone(), now, Vec::new())
            .await
            .unwrap()
    );
    assert!(
        store
            .replace_recovery_codes(alice, fresh.clone(), now, Vec::new())
            .await
            .unwrap()
    );
    assert!(!store.spend_recovery_code(alice, &hashes[1], now).await.unwrap());
    assert!(store.spend_recovery_code(alice, &fresh[0], now).await.unwrap());
    // Removal: everything goes, the stamp moves, the kept session alone stays.
    let (third, _) = common::stores::session_at_stamp(store.as_ref(), alice, 1, now, now.plus(10_000)).await;
    let removal = |keep| RemoveFactors {
        user: alice,
        keep,
        now,
        mails: Vec::new(),
    };
    assert_eq!(
        store.remove_second_factors(removal(Some(kept))).await.unwrap(),
        Some(vec![third])
    );
    let after = store.user_by_id(alice).await.unwrap().unwrap();
    assert!(!after.mfa_enabled);
    assert_eq!(after.security_stamp, 2);
    assert_eq!(store.second_factors(alice).await.unwrap(), Default::default());
    assert!(!store.spend_recovery_code(alice, &fresh[1], now).await.unwrap());
    assert_eq!(store.remove_second_factors(removal(None)).await.unwrap(), None);
}

/// Twenty requests given one code at once (twenty instances behind a balancer): the
/// step is accepted once, a recovery code spent once.
#[per_backend]
async fn concurrent_uses_of_one_code_succeed_once(backend: common::Backend) {
    use tokengate::crypto::recovery_codes::RecoveryCode;
    use tokengate::store::ConfirmTotp;
    let Some((store, _keep)) = open(backend).await else {
        return;
    };
    let now = UnixTime(1_900_000_000);
    let alice = user(store.as_ref(), "alice", now).await;
    let (kept, _) = session(store.as_ref(), alice, now, now.plus(10_000)).await;
    store.begin_totp(alice, b"s".to_vec(), now).await.unwrap();
    let (_, hashes) = RecoveryCode::generate_set().unwrap();
    let confirm = ConfirmTotp {
        user: alice,
        secret: b"s".to_vec(),
        step: 1,
        codes: hashes.clone(),
        keep: kept,
        keep_auth: tokengate::domain::Authentication::new(now, &[tokengate::domain::AuthMethod::Pwd]),
        now,
        mails: Vec::new(),
    };
    store.confirm_totp(confirm).await.unwrap().unwrap();
    let steps = (0..20).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { store.advance_totp_step(alice, 2).await.unwrap() })
    });
    let won = futures_util::future::join_all(steps).await;
    assert_eq!(won.into_iter().filter(|w| *w.as_ref().unwrap()).count(), 1);
    let spends = (0..20).map(|_| {
        let (store, code) = (store.clone(), hashes[3].clone());
        tokio::spawn(async move { store.spend_recovery_code(alice, &code, now).await.unwrap() })
    });
    let won = futures_util::future::join_all(spends).await;
    assert_eq!(won.into_iter().filter(|w| *w.as_ref().unwrap()).count(), 1);
}
