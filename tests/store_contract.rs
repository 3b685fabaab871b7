//! The storage contract, on `Arc<dyn Store>` as the server opens it, for every backend:
//! what a purge removes and keeps, that every revoking write leaves a row in the
//! revocation log (the log is how the other instances learn of it), that a refused
//! guarded change writes nothing, and that concurrent rotations of one token spend it
//! once.

mod common;

use common::stores::{open, session, user};

use std::sync::Arc;
use tokengate_test_macros::per_backend;

use tokengate::crypto::tokens::ClientSecretHash;
use tokengate::crypto::tokens::RefreshToken;
use tokengate::domain::{ClientId, ClientName, KeyPurpose, RedirectUri, Role, Scope, UnixTime};
use tokengate::store::{
    ClientUpdate, Revoked, RotateRequest, Rotation, Store, StoreError, StoredClient, StoredKey, UserUpdate, UserWrite,
};

fn key(kid: &str, active: bool, now: UnixTime, retires_at: Option<UnixTime>) -> StoredKey {
    StoredKey {
        kid: kid.into(),
        purpose: tokengate::domain::KeyPurpose::Access,
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
async fn each_purpose_has_its_own_active_key(backend: common::Backend) {
    let Some((store, _keep)) = open(backend).await else {
        return;
    };
    let now = UnixTime(1_900_000_000);
    let purposed = |kid: &str, purpose: KeyPurpose| StoredKey {
        purpose,
        ..key(kid, true, now, None)
    };
    store
        .add_active_key(purposed("access-1", KeyPurpose::Access))
        .await
        .unwrap();
    // An id_token key beside it; a second active one of either purpose is a conflict.
    store
        .add_active_key(purposed("id-1", KeyPurpose::IdToken))
        .await
        .unwrap();
    for (kid, purpose) in [("access-2", KeyPurpose::Access), ("id-2", KeyPurpose::IdToken)] {
        let res = store.add_active_key(purposed(kid, purpose)).await;
        assert!(matches!(res, Err(StoreError::Conflict)), "{kid}: {res:?}");
    }
    // Rotating the id_token key retires only the id_token key.
    store
        .rotate_key(purposed("id-3", KeyPurpose::IdToken), now, now.plus(60))
        .await
        .unwrap();
    let keys = store.signing_keys().await.unwrap();
    let state = |kid: &str| {
        let k = keys.iter().find(|k| k.kid == kid).unwrap();
        (k.purpose, k.active, k.retires_at)
    };
    assert_eq!(state("access-1"), (KeyPurpose::Access, true, None));
    assert_eq!(state("id-1"), (KeyPurpose::IdToken, false, Some(now.plus(60))));
    assert_eq!(state("id-3"), (KeyPurpose::IdToken, true, None));
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

    // An application's changes: every instance's cached record must go.
    let client = StoredClient {
        id: ClientId::new(),
        name: ClientName::parse("App").unwrap(),
        secret_hash: Some(ClientSecretHash::of("first-secret")),
        redirect_uris: vec![RedirectUri::parse("https://app.example.com/cb").unwrap()],
        post_logout_redirect_uris: Vec::new(),
        scopes: vec![Scope::parse("openid").unwrap()],
        trusted: false,
        audience: None,
        created_at: now,
        updated_at: now,
    };
    store.create_client(client.clone()).await.unwrap();
    let rename = ClientUpdate {
        name: Some(ClientName::parse("Renamed").unwrap()),
        ..Default::default()
    };
    assert!(store.update_client(client.id, rename, now).await.unwrap());
    expect_more("update_client", rows(store.clone()).await);
    let secret = ClientSecretHash::of("second-secret");
    assert!(store.set_client_secret(client.id, secret, now).await.unwrap());
    expect_more("set_client_secret", rows(store.clone()).await);
    assert!(store.delete_client(client.id, now).await.unwrap().is_some());
    expect_more("delete_client", rows(store.clone()).await);
    let last = store.revocations_after(0).await.unwrap().pop().unwrap();
    assert_eq!(last.what, Revoked::Client(client.id));
    // A write that finds no row logs nothing.
    let before = rows(store.clone()).await;
    assert!(
        !store
            .update_client(ClientId::new(), ClientUpdate::default(), now)
            .await
            .unwrap()
    );
    assert_eq!(rows(store.clone()).await, before);

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
        scope: tokengate::store::FactorScope::Every,
        keep_a_factor: false,
        keep,
        now,
        mails: Vec::new(),
    };
    assert_eq!(
        store.remove_second_factors(removal(Some(kept))).await.unwrap(),
        tokengate::store::FactorsRemoved::Removed(vec![third])
    );
    let after = store.user_by_id(alice).await.unwrap().unwrap();
    assert!(!after.mfa_enabled);
    assert_eq!(after.security_stamp, 2);
    assert_eq!(store.second_factors(alice).await.unwrap(), Default::default());
    assert!(!store.spend_recovery_code(alice, &fresh[1], now).await.unwrap());
    assert_eq!(
        store.remove_second_factors(removal(None)).await.unwrap(),
        tokengate::store::FactorsRemoved::Nothing
    );
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

fn stored_passkey(
    user: tokengate::domain::UserId,
    credential_id: &[u8],
    now: UnixTime,
) -> tokengate::store::StoredPasskey {
    tokengate::store::StoredPasskey {
        id: tokengate::domain::PasskeyId::new(),
        user,
        credential_id: credential_id.to_vec(),
        rp_id: "example.com".into(),
        name: tokengate::domain::PasskeyName::parse("key").unwrap(),
        credential: "{}".into(),
        sign_count: 0,
        created_at: now,
        last_used_at: None,
    }
}

/// Adding a passkey turns MFA on (codes only then), moves the stamp and keeps one
/// session; a credential ID is one account's; removing the last factor turns MFA off,
/// unless asked to keep one; a TOTP factor removed leaves MFA on while a passkey stays.
#[per_backend]
async fn passkeys_turn_mfa_on_and_off_in_one_transaction_each(backend: common::Backend) {
    use tokengate::crypto::recovery_codes::RecoveryCode;
    use tokengate::domain::{AuthMethod, Authentication};
    use tokengate::store::{
        AddPasskey, FactorScope, FactorsRemoved, PasskeyAdded, PasskeyRemoved, RemoveFactors, RemovePasskey,
    };
    let Some((store, _keep)) = open(backend).await else {
        return;
    };
    let now = UnixTime(1_900_000_000);
    let alice = user(store.as_ref(), "alice", now).await;
    let bob = user(store.as_ref(), "bob", now).await;
    let (kept, _) = session(store.as_ref(), alice, now, now.plus(10_000)).await;
    let (other, _) = session(store.as_ref(), alice, now, now.plus(10_000)).await;
    let (_, codes) = RecoveryCode::generate_set().unwrap();
    let add = |user, keep, credential_id: &[u8]| AddPasskey {
        passkey: stored_passkey(user, credential_id, now),
        codes_if_first: codes.clone(),
        keep,
        keep_auth: Authentication::new(now, &[AuthMethod::Pwd, AuthMethod::Hwk, AuthMethod::User]),
        now,
        mails: Vec::new(),
    };
    assert_eq!(
        store.add_passkey(add(alice, kept, b"cred-1")).await.unwrap(),
        PasskeyAdded::Added {
            revoked: vec![other],
            mfa_turned_on: true
        }
    );
    let after = store.user_by_id(alice).await.unwrap().unwrap();
    assert!(after.mfa_enabled);
    assert_eq!(after.security_stamp, 1);
    let state = store.second_factors(alice).await.unwrap();
    assert_eq!((state.passkeys, state.recovery_codes_left), (1, 10));
    let (kept_now, _) = store.session_with_user(kept).await.unwrap().unwrap();
    assert_eq!(kept_now.auth.amr(), ["pwd", "hwk", "user", "mfa"]);
    // The same credential, for anyone: nothing written.
    assert_eq!(
        store.add_passkey(add(bob, kept, b"cred-1")).await.unwrap(),
        PasskeyAdded::CredentialTaken
    );
    assert!(!store.user_by_id(bob).await.unwrap().unwrap().mfa_enabled);
    // A second: MFA was on, the codes stay as they are.
    store.spend_recovery_code(alice, &codes[0], now).await.unwrap();
    let (_, fresh) = RecoveryCode::generate_set().unwrap();
    let mut second = add(alice, kept, b"cred-2");
    second.codes_if_first = fresh;
    assert!(matches!(
        store.add_passkey(second).await.unwrap(),
        PasskeyAdded::Added {
            mfa_turned_on: false,
            ..
        }
    ));
    assert_eq!(store.second_factors(alice).await.unwrap().recovery_codes_left, 9);
    assert_eq!(store.passkeys_of(alice).await.unwrap().len(), 2);
    let by_credential = |c: &'static [u8]| {
        let store = store.clone();
        async move { store.passkey_by_credential(c).await.unwrap().unwrap() }
    };
    let (first, found) = (by_credential(b"cred-1").await, by_credential(b"cred-2").await);
    assert_eq!(found.user, alice);
    let ids = [first.id, found.id];
    assert!(store.passkey_by_credential(b"cred-3").await.unwrap().is_none());
    // Renaming: only the owner's.
    let name = tokengate::domain::PasskeyName::parse("blue").unwrap();
    assert!(!store.rename_passkey(bob, ids[0], name.clone()).await.unwrap());
    assert!(store.rename_passkey(alice, ids[0], name).await.unwrap());
    let remove = |id, keep_a_factor| RemovePasskey {
        user: alice,
        id,
        keep: kept,
        keep_a_factor,
        now,
        mails: Vec::new(),
    };
    // Another user's id is not found; one of two goes with MFA left on.
    let mut foreign = remove(ids[0], false);
    foreign.user = bob;
    assert_eq!(store.remove_passkey(foreign).await.unwrap(), PasskeyRemoved::NotFound);
    assert!(matches!(
        store.remove_passkey(remove(ids[0], true)).await.unwrap(),
        PasskeyRemoved::Removed {
            mfa_turned_off: false,
            ..
        }
    ));
    // The last one, kept when asked; else MFA and the codes go.
    assert_eq!(
        store.remove_passkey(remove(ids[1], true)).await.unwrap(),
        PasskeyRemoved::LastFactor
    );
    assert_eq!(store.passkeys_of(alice).await.unwrap().len(), 1);
    // With a TOTP factor beside it, removing the TOTP leaves MFA on.
    store.begin_totp(alice, b"s".to_vec(), now).await.unwrap();
    let confirm = tokengate::store::ConfirmTotp {
        user: alice,
        secret: b"s".to_vec(),
        step: 1,
        codes: codes.clone(),
        keep: kept,
        keep_auth: Authentication::new(now, &[AuthMethod::Pwd]),
        now,
        mails: Vec::new(),
    };
    store.confirm_totp(confirm).await.unwrap().unwrap();
    let totp_off = RemoveFactors {
        user: alice,
        scope: FactorScope::Totp,
        keep_a_factor: true,
        keep: Some(kept),
        now,
        mails: Vec::new(),
    };
    assert!(matches!(
        store.remove_second_factors(totp_off.clone()).await.unwrap(),
        FactorsRemoved::Removed(_)
    ));
    assert!(store.user_by_id(alice).await.unwrap().unwrap().mfa_enabled);
    assert_eq!(store.second_factors(alice).await.unwrap().recovery_codes_left, 10);
    // No TOTP left to remove: nothing written.
    assert_eq!(
        store.remove_second_factors(totp_off).await.unwrap(),
        FactorsRemoved::Nothing
    );
    assert!(matches!(
        store.remove_passkey(remove(ids[1], false)).await.unwrap(),
        PasskeyRemoved::Removed {
            mfa_turned_off: true,
            ..
        }
    ));
    let after = store.user_by_id(alice).await.unwrap().unwrap();
    assert!(!after.mfa_enabled);
    assert_eq!(store.second_factors(alice).await.unwrap(), Default::default());
    assert_eq!(store.passkey_rp_ids().await.unwrap(), Vec::<(String, u64)>::new());
}

/// A use is recorded only when the counter moves forward (or stays 0 for an
/// authenticator that keeps none); of twenty uses with one counter, one is.
#[per_backend]
async fn passkey_uses_move_the_counter_forward_once(backend: common::Backend) {
    use tokengate::store::PasskeyUse;
    let Some((store, _keep)) = open(backend).await else {
        return;
    };
    let now = UnixTime(1_900_000_000);
    let alice = user(store.as_ref(), "alice", now).await;
    let (kept, _) = session(store.as_ref(), alice, now, now.plus(10_000)).await;
    let p = stored_passkey(alice, b"cred", now);
    let id = p.id;
    store
        .add_passkey(tokengate::store::AddPasskey {
            passkey: p,
            codes_if_first: Vec::new(),
            keep: kept,
            keep_auth: tokengate::domain::Authentication::new(now, &[]),
            now,
            mails: Vec::new(),
        })
        .await
        .unwrap();
    let used = move |count, credential: &str| PasskeyUse {
        id,
        credential: credential.into(),
        sign_count: count,
        now: now.plus(5),
    };
    // A counter-less authenticator: every use counts.
    assert!(store.record_passkey_use(used(0, "a")).await.unwrap());
    assert!(store.record_passkey_use(used(0, "b")).await.unwrap());
    let uses = (0..20).map(|_| {
        let store = store.clone();
        tokio::spawn(async move { store.record_passkey_use(used(7, "c")).await.unwrap() })
    });
    let won = futures_util::future::join_all(uses).await;
    assert_eq!(won.into_iter().filter(|w| *w.as_ref().unwrap()).count(), 1);
    // Backwards, or 0 after a counter: refused.
    assert!(!store.record_passkey_use(used(6, "d")).await.unwrap());
    assert!(!store.record_passkey_use(used(0, "d")).await.unwrap());
    let stored = store.passkey_by_credential(b"cred").await.unwrap().unwrap();
    assert_eq!((stored.sign_count, stored.credential.as_str()), (7, "c"));
    assert_eq!(stored.last_used_at, Some(now.plus(5)));
    assert_eq!(
        store.passkey_rp_ids().await.unwrap(),
        vec![("example.com".to_owned(), 1)]
    );
}

/// A ceremony is taken once, before it expires, by its kind only; of twenty requests
/// finishing one, one gets it; the purge drops expired ones.
#[per_backend]
async fn a_ceremony_is_taken_once(backend: common::Backend) {
    use tokengate::crypto::tokens::OneTimeToken;
    use tokengate::domain::CeremonyKind;
    use tokengate::store::NewCeremony;
    let Some((store, _keep)) = open(backend).await else {
        return;
    };
    let now = UnixTime(1_900_000_000);
    let alice = user(store.as_ref(), "alice", now).await;
    let open_one = |user| {
        let (_, hash) = OneTimeToken::generate().unwrap();
        (
            hash.clone(),
            NewCeremony {
                hash,
                kind: CeremonyKind::SignIn,
                user,
                state: "{\"s\":1}".into(),
                now,
                expires_at: now.plus(300),
            },
        )
    };
    let (named, ceremony) = open_one(Some(alice));
    store.open_ceremony(ceremony).await.unwrap();
    assert!(
        store
            .take_ceremony(&named, CeremonyKind::Register, now)
            .await
            .unwrap()
            .is_none()
    );
    let takes = (0..20).map(|_| {
        let (store, hash) = (store.clone(), named.clone());
        tokio::spawn(async move { store.take_ceremony(&hash, CeremonyKind::SignIn, now).await.unwrap() })
    });
    let taken: Vec<_> = futures_util::future::join_all(takes)
        .await
        .into_iter()
        .filter_map(|t| t.unwrap())
        .collect();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].user, Some(alice));
    assert_eq!(taken[0].state, "{\"s\":1}");
    // Expired: not taken; purged at once (not kept as long as sessions are).
    let (late, ceremony) = open_one(None);
    store.open_ceremony(ceremony).await.unwrap();
    assert!(
        store
            .take_ceremony(&late, CeremonyKind::SignIn, now.plus(300))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.purge_ceremonies(now.plus(299)).await.unwrap(), 0);
    assert_eq!(store.purge_ceremonies(now.plus(300)).await.unwrap(), 1);
    let (fresh, ceremony) = open_one(None);
    store.open_ceremony(ceremony).await.unwrap();
    let t = store
        .take_ceremony(&fresh, CeremonyKind::SignIn, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(t.user, None);
}

/// A TOTP factor and the last passkey removed at once by a holder of a role that
/// requires MFA: one removal wins, the other finds it would leave no factor.
#[per_backend]
async fn concurrent_removals_keep_one_factor_when_asked(backend: common::Backend) {
    use tokengate::store::{
        AddPasskey, ConfirmTotp, FactorScope, FactorsRemoved, PasskeyRemoved, RemoveFactors, RemovePasskey,
    };
    let Some((store, _keep)) = open(backend).await else {
        return;
    };
    let now = UnixTime(1_900_000_000);
    let alice = user(store.as_ref(), "alice", now).await;
    let (kept, _) = session(store.as_ref(), alice, now, now.plus(10_000)).await;
    let auth = tokengate::domain::Authentication::new(now, &[]);
    let p = stored_passkey(alice, b"cred", now);
    let id = p.id;
    store
        .add_passkey(AddPasskey {
            passkey: p,
            codes_if_first: Vec::new(),
            keep: kept,
            keep_auth: auth,
            now,
            mails: Vec::new(),
        })
        .await
        .unwrap();
    store.begin_totp(alice, b"s".to_vec(), now).await.unwrap();
    let confirm = ConfirmTotp {
        user: alice,
        secret: b"s".to_vec(),
        step: 1,
        codes: Vec::new(),
        keep: kept,
        keep_auth: auth,
        now,
        mails: Vec::new(),
    };
    store.confirm_totp(confirm).await.unwrap().unwrap();
    let (a, b) = (store.clone(), store.clone());
    let totp = tokio::spawn(async move {
        a.remove_second_factors(RemoveFactors {
            user: alice,
            scope: FactorScope::Totp,
            keep_a_factor: true,
            keep: Some(kept),
            now,
            mails: Vec::new(),
        })
        .await
        .unwrap()
    });
    let passkey = tokio::spawn(async move {
        b.remove_passkey(RemovePasskey {
            user: alice,
            id,
            keep: kept,
            keep_a_factor: true,
            now,
            mails: Vec::new(),
        })
        .await
        .unwrap()
    });
    let (totp, passkey) = (totp.await.unwrap(), passkey.await.unwrap());
    let removed = usize::from(matches!(totp, FactorsRemoved::Removed(_)))
        + usize::from(matches!(passkey, PasskeyRemoved::Removed { .. }));
    assert_eq!(removed, 1, "{totp:?} {passkey:?}");
    assert!(store.user_by_id(alice).await.unwrap().unwrap().mfa_enabled);
}

/// Two first passkeys registered at once: MFA turns on once, with one set of codes.
#[per_backend]
async fn concurrent_first_passkeys_turn_mfa_on_once(backend: common::Backend) {
    use tokengate::store::{AddPasskey, PasskeyAdded};
    let Some((store, _keep)) = open(backend).await else {
        return;
    };
    let now = UnixTime(1_900_000_000);
    let alice = user(store.as_ref(), "alice", now).await;
    let (kept, _) = session(store.as_ref(), alice, now, now.plus(10_000)).await;
    let adds = (0..6u8).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .add_passkey(AddPasskey {
                    passkey: stored_passkey(alice, &[b'c', i], now),
                    codes_if_first: Vec::new(),
                    keep: kept,
                    keep_auth: tokengate::domain::Authentication::new(now, &[]),
                    now,
                    mails: Vec::new(),
                })
                .await
                .unwrap()
        })
    });
    let added = futures_util::future::join_all(adds).await;
    let turned_on = added
        .iter()
        .filter(|a| {
            matches!(
                a.as_ref().unwrap(),
                PasskeyAdded::Added {
                    mfa_turned_on: true,
                    ..
                }
            )
        })
        .count();
    assert_eq!(turned_on, 1, "{added:?}");
    assert_eq!(store.passkeys_of(alice).await.unwrap().len(), 6);
}
