//! A per-instance cache of the per-request check (session + user), and of the
//! provider's client records (read by every authorization and token request), as a
//! layer over any `Store`. It holds no rule: it answers `session_with_user` from memory while it can
//! prove it is fresh, and forgets what the database says was revoked.
//!
//! How it stays correct across instances:
//! - every revocation writes a row to the revocation log in its own transaction (the
//!   backends do this), and this instance applies its own revocations at once;
//! - a catch-up task reads the log every `CATCH_UP`: rows after the last sequence seen,
//!   and again from any gap it saw, since sequence numbers can commit out of order (a
//!   missing number is asked for until it shows up, or for `GAP_WAIT`: a rolled-back
//!   insert leaves a gap for good). No clock is involved, so instances whose clocks
//!   disagree still see every row; applying a row twice is harmless;
//! - a lease: the cache is used only while the last successful catch-up started less
//!   than `LEASE` ago, so a revocation committed anywhere is honoured here within
//!   `LEASE` (plus one catch-up). When the database is slow or gone the cache is
//!   bypassed (every request reads the database), and after such a gap it starts empty;
//! - a read that began before an invalidation is never cached after it (an epoch).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::layer::Over;
use super::{
    AddPasskey, ClientUpdate, Clients, CodeTaken, ConfirmTotp, FactorChanges, FactorsRemoved, GrantRevoked, Grants,
    KeysRole, Lifecycle, LoggedRevocation, NewCode, NewOneTimeToken, NewPassword, NewSession, OneTimeTokens,
    OutboxRole, PasskeyAdded, PasskeyRemoved, PasskeysRole, Redeem, Redeemed, RemoveFactors, RemovePasskey,
    RevocationLogRole, Revoked, RotateRequest, Rotation, SecondFactorsRole, SessionOpen, SessionRecord, Sessions,
    Store, StoreError, StoredClient, StoredConsent, StoredOneTimeToken, StoredRefreshToken, UserChanged, UserChanges,
    UserRecord, UserUpdate, UserWrite, UsersRole,
};
use crate::clock::Clock;
use crate::crypto::tokens::{AuthCodeHash, ClientSecretHash, OneTimeTokenHash, RefreshTokenHash};
use crate::domain::{ClientId, Role, Scope, SessionId, TokenPurpose, UnixTime, UserId};

/// How often the revocation log is read.
pub const CATCH_UP: Duration = Duration::from_millis(200);
/// How old the last successful catch-up may be for the cache to be trusted.
pub const LEASE: Duration = Duration::from_millis(750);
/// A missing sequence number is asked for this long before it counts as rolled back.
const GAP_WAIT: Duration = Duration::from_secs(60);
/// More missing numbers than this at once: the cache starts over instead of tracking them.
const MAX_GAPS: i64 = 10_000;
/// An entry is reread after this long anyway (its session's expiry may have moved, and
/// a revocation missed for any reason lives no longer than this).
const MAX_AGE: Duration = Duration::from_secs(10);
/// Entries at most; past that, new ones are not cached until old ones age out.
const MAX_ENTRIES: usize = 100_000;

/// Tells the other instances that this one revoked something (a push; see `fanout`).
pub trait RevocationSignal: Send + Sync + 'static {
    fn announce(self: Arc<Self>);
}

struct Entry {
    session: SessionRecord,
    user: UserRecord,
    loaded: Instant,
}

/// The cached entries, by session and by user: forgetting a user (a password change, a
/// deactivation) touches that user's entries only, never a scan of all of them under
/// the lock every request takes.
#[derive(Default)]
struct Entries {
    by_session: HashMap<SessionId, Arc<Entry>>,
    by_user: HashMap<UserId, Vec<SessionId>>,
}

impl Entries {
    fn insert(&mut self, entry: Entry) {
        let (id, user) = (entry.session.id, entry.user.id);
        if self.by_session.insert(id, Arc::new(entry)).is_none() {
            self.by_user.entry(user).or_default().push(id);
        }
    }

    fn remove_session(&mut self, id: SessionId) {
        if let Some(e) = self.by_session.remove(&id)
            && let Some(ids) = self.by_user.get_mut(&e.user.id)
        {
            ids.retain(|s| *s != id);
            if ids.is_empty() {
                self.by_user.remove(&e.user.id);
            }
        }
    }

    fn remove_user(&mut self, user: UserId) {
        for id in self.by_user.remove(&user).unwrap_or_default() {
            self.by_session.remove(&id);
        }
    }

    /// Keep the entries `keep` says to; the index follows.
    fn retain(&mut self, keep: impl Fn(&Entry) -> bool) {
        self.by_session.retain(|_, e| keep(e));
        let by_session = &self.by_session;
        self.by_user.retain(|_, ids| {
            ids.retain(|id| by_session.contains_key(id));
            !ids.is_empty()
        });
    }

    fn clear(&mut self) {
        *self = Self::default();
    }
}

/// The cached store.
pub struct CachedStore {
    inner: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    /// Entries are shared (`Arc`) so a hit holds the lock for a pointer copy only; the
    /// records are cloned after it is released (both request threads read here).
    entries: Mutex<Entries>,
    /// Client records with when each was read (their changes come through the log).
    clients: Mutex<HashMap<ClientId, (StoredClient, Instant)>>,
    /// Moves on every invalidation: a read that started before it is not cached.
    epoch: AtomicU64,
    /// The highest log sequence applied.
    last_seq: AtomicI64,
    /// Sequence numbers below `last_seq` not seen yet, with when they were first missed.
    gaps: Mutex<std::collections::BTreeMap<i64, Instant>>,
    /// The log was read once: from then on every number after `last_seq` is expected.
    primed: AtomicBool,
    /// When the last successful catch-up started (ms since `started`), if it is recent.
    fresh_since_ms: AtomicU64,
    /// A catch-up failed or is overdue: the next successful one starts from empty.
    gap: AtomicBool,
    started: Instant,
    /// Wakes the catch-up task before its tick (another instance said it revoked).
    wake: tokio::sync::Notify,
    /// Announces this instance's revocations to the others, if there is a channel.
    signal: Mutex<Option<Arc<dyn RevocationSignal>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl CachedStore {
    /// Wrap `inner`, catch up once, and keep catching up in the background for as long
    /// as the returned store lives.
    pub async fn start(inner: Arc<dyn Store>, clock: Arc<dyn Clock>) -> Arc<Self> {
        let store = Arc::new(Self {
            inner,
            clock,
            entries: Mutex::new(Entries::default()),
            clients: Mutex::new(HashMap::new()),
            epoch: AtomicU64::new(0),
            last_seq: AtomicI64::new(0),
            gaps: Mutex::new(std::collections::BTreeMap::new()),
            primed: AtomicBool::new(false),
            fresh_since_ms: AtomicU64::new(0),
            gap: AtomicBool::new(true),
            started: Instant::now(),
            wake: tokio::sync::Notify::new(),
            signal: Mutex::new(None),
        });
        let _ = store.catch_up().await;
        tokio::spawn(catch_up_loop(Arc::downgrade(&store)));
        store
    }

    /// Announce this instance's revocations through `signal` from now on.
    pub fn announce_through(&self, signal: Arc<dyn RevocationSignal>) {
        *lock(&self.signal) = Some(signal);
    }

    /// Read the log now rather than at the next tick.
    pub fn nudge(&self) {
        self.wake.notify_one();
    }

    /// Forget what this instance itself revoked, and tell the others.
    fn revoked_here(&self, what: Revoked) {
        self.forget(what);
        let signal = lock(&self.signal).clone();
        if let Some(s) = signal {
            s.announce();
        }
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Is the last successful catch-up recent enough to trust the cache?
    fn is_fresh(&self) -> bool {
        let since = self.fresh_since_ms.load(Ordering::Acquire);
        since > 0 && self.elapsed_ms().saturating_sub(since) < LEASE.as_millis() as u64
    }

    /// Read the log and forget what it names. Public for tests that drive it by hand.
    pub async fn catch_up(&self) -> Result<(), StoreError> {
        // +1 so that 0 means "never".
        let started_ms = self.elapsed_ms() + 1;
        let last = self.last_seq.load(Ordering::Acquire);
        let from = {
            let mut gaps = lock(&self.gaps);
            gaps.retain(|_, first_missed| first_missed.elapsed() < GAP_WAIT);
            gaps.keys().next().map_or(last, |oldest| (oldest - 1).min(last))
        };
        let rows = match self.inner.revocations_after(from).await {
            Ok(rows) => rows,
            Err(e) => {
                self.gap.store(true, Ordering::Release);
                return Err(e);
            }
        };
        if self.gap.swap(false, Ordering::AcqRel) {
            // Whatever happened while we could not read the log, we no longer know.
            self.clear();
        }
        let mut restart = false;
        // Before the first read, what came before is not ours to track.
        let primed = self.primed.swap(true, Ordering::AcqRel);
        {
            let mut gaps = lock(&self.gaps);
            let mut high = self.last_seq.load(Ordering::Acquire);
            for LoggedRevocation { seq, what } in rows {
                self.forget(what);
                gaps.remove(&seq);
                if seq > high {
                    if primed && seq - high - 1 > MAX_GAPS {
                        restart = true;
                    } else if primed {
                        let now = Instant::now();
                        for missing in (high + 1)..seq {
                            gaps.entry(missing).or_insert(now);
                        }
                    }
                    high = seq;
                }
            }
            self.last_seq.fetch_max(high, Ordering::AcqRel);
            if restart {
                gaps.clear();
            }
        }
        if restart {
            self.clear();
        }
        self.fresh_since_ms.store(started_ms, Ordering::Release);
        Ok(())
    }

    fn forget(&self, what: Revoked) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        match what {
            Revoked::Session(id) => lock(&self.entries).remove_session(id),
            Revoked::User(user) => lock(&self.entries).remove_user(user),
            Revoked::Client(id) => {
                lock(&self.clients).remove(&id);
            }
        }
    }

    fn clear(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        lock(&self.entries).clear();
        lock(&self.clients).clear();
    }

    /// Drop entries past their age (the catch-up loop calls this now and then).
    fn sweep(&self) {
        lock(&self.entries).retain(|e| e.loaded.elapsed() < MAX_AGE);
        lock(&self.clients).retain(|_, (_, loaded)| loaded.elapsed() < MAX_AGE);
    }

    fn cached_client(&self, id: ClientId) -> Option<StoredClient> {
        lock(&self.clients)
            .get(&id)
            .filter(|(_, loaded)| loaded.elapsed() < MAX_AGE)
            .map(|(c, _)| c.clone())
    }

    /// Cache a client read, unless an invalidation happened since it began (`epoch`).
    fn remember_client(&self, epoch: u64, client: &StoredClient) {
        let mut clients = lock(&self.clients);
        if self.epoch.load(Ordering::Acquire) != epoch || clients.len() >= MAX_ENTRIES {
            return;
        }
        clients.insert(client.id, (client.clone(), Instant::now()));
    }

    fn cached(&self, id: SessionId) -> Option<(SessionRecord, UserRecord)> {
        let e = lock(&self.entries).by_session.get(&id)?.clone();
        // An entry whose session looks expired may only be stale: ask the database.
        let usable = e.loaded.elapsed() < MAX_AGE && e.session.is_live(self.clock.now());
        usable.then(|| (e.session.clone(), e.user.clone()))
    }

    /// Cache a read, unless an invalidation happened since it began (`epoch`).
    fn remember(&self, epoch: u64, session: &SessionRecord, user: &UserRecord) {
        let mut entries = lock(&self.entries);
        if self.epoch.load(Ordering::Acquire) != epoch || entries.by_session.len() >= MAX_ENTRIES {
            return;
        }
        entries.insert(Entry {
            session: session.clone(),
            user: user.clone(),
            loaded: Instant::now(),
        });
    }
}

async fn catch_up_loop(store: Weak<CachedStore>) {
    let mut tick = tokio::time::interval(CATCH_UP);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut rounds: u64 = 0;
    let mut failing_since: Option<u64> = None;
    loop {
        let Some(s) = store.upgrade() else { return };
        tokio::select! {
            _ = tick.tick() => {}
            () = s.wake.notified() => {}
        }
        match s.catch_up().await {
            Ok(()) => {
                if failing_since.take().is_some() {
                    tracing::info!("revocation log readable again; the session cache is back in use");
                }
            }
            Err(e) => {
                // At its first failure, then once a minute: the cache is bypassed
                // meanwhile, which is correct.
                let first = *failing_since.get_or_insert(rounds);
                if (rounds - first).is_multiple_of(300) {
                    tracing::warn!(error = %e, "revocation log unreadable; checking every request in the database");
                }
            }
        }
        rounds += 1;
        if rounds.is_multiple_of(50) {
            s.sweep();
        }
    }
}

#[async_trait]
impl Lifecycle for CachedStore {
    async fn reachable(&self, within: Duration) -> Result<(), StoreError> {
        self.inner.reachable(within).await
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        self.inner.migrate().await
    }

    fn cache_trusted(&self) -> Option<bool> {
        Some(self.is_fresh())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }

    async fn close(&self) {
        self.inner.close().await;
    }

    fn pool_stats(&self) -> Vec<super::PoolStats> {
        self.inner.pool_stats()
    }

    async fn purge_expired(&self, cutoff: UnixTime) -> Result<u64, StoreError> {
        self.inner.purge_expired(cutoff).await
    }
}

#[async_trait]
impl UserChanges for CachedStore {
    async fn update_user(
        &self,
        id: UserId,
        update: UserUpdate,
        guard: Option<&Role>,
        now: UnixTime,
    ) -> Result<UserWrite<UserChanged>, StoreError> {
        let out = self.inner.update_user(id, update, guard, now).await?;
        if matches!(out, UserWrite::Done(_)) {
            self.revoked_here(Revoked::User(id));
        }
        Ok(out)
    }

    async fn delete_user(
        &self,
        id: UserId,
        guard: Option<&Role>,
        now: UnixTime,
    ) -> Result<UserWrite<Vec<SessionId>>, StoreError> {
        let out = self.inner.delete_user(id, guard, now).await?;
        if matches!(out, UserWrite::Done(_)) {
            self.revoked_here(Revoked::User(id));
        }
        Ok(out)
    }

    async fn change_password(&self, change: NewPassword) -> Result<Option<Vec<SessionId>>, StoreError> {
        let user = change.user;
        let out = self.inner.change_password(change).await?;
        if out.is_some() {
            self.revoked_here(Revoked::User(user));
        }
        Ok(out)
    }
}

/// A redeemed token may change the user (their address, their password): forgotten
/// here at once, as a change through [`UserChanges`] is.
#[async_trait]
impl OneTimeTokens for CachedStore {
    async fn issue_one_time(&self, token: NewOneTimeToken) -> Result<bool, StoreError> {
        self.inner.issue_one_time(token).await
    }

    async fn one_time_token(&self, hash: &OneTimeTokenHash) -> Result<Option<StoredOneTimeToken>, StoreError> {
        self.inner.one_time_token(hash).await
    }

    async fn attempt_one_time(
        &self,
        hash: &OneTimeTokenHash,
        purpose: TokenPurpose,
        now: UnixTime,
        max: i64,
    ) -> Result<Option<StoredOneTimeToken>, StoreError> {
        self.inner.attempt_one_time(hash, purpose, now, max).await
    }

    async fn spend_one_time(
        &self,
        hash: &OneTimeTokenHash,
        purpose: TokenPurpose,
        now: UnixTime,
    ) -> Result<Option<StoredOneTimeToken>, StoreError> {
        self.inner.spend_one_time(hash, purpose, now).await
    }

    async fn redeem_one_time(&self, redeem: Redeem) -> Result<Option<Redeemed>, StoreError> {
        // Every redemption changes the user (a sign-in link proves the address too).
        let out = self.inner.redeem_one_time(redeem).await?;
        if let Some(done) = &out {
            self.revoked_here(Revoked::User(done.user.id));
        }
        Ok(out)
    }
}

/// Turning MFA on or off moves the user's stamp and revokes sessions: forgotten here at
/// once.
#[async_trait]
impl FactorChanges for CachedStore {
    async fn confirm_totp(&self, confirm: ConfirmTotp) -> Result<Option<Vec<SessionId>>, StoreError> {
        let user = confirm.user;
        let out = self.inner.confirm_totp(confirm).await?;
        if out.is_some() {
            self.revoked_here(Revoked::User(user));
        }
        Ok(out)
    }

    async fn remove_second_factors(&self, removal: RemoveFactors) -> Result<FactorsRemoved, StoreError> {
        let user = removal.user;
        let out = self.inner.remove_second_factors(removal).await?;
        if matches!(out, FactorsRemoved::Removed(_)) {
            self.revoked_here(Revoked::User(user));
        }
        Ok(out)
    }

    async fn add_passkey(&self, add: AddPasskey) -> Result<PasskeyAdded, StoreError> {
        let user = add.passkey.user;
        let out = self.inner.add_passkey(add).await?;
        if matches!(out, PasskeyAdded::Added { .. }) {
            self.revoked_here(Revoked::User(user));
        }
        Ok(out)
    }

    async fn remove_passkey(&self, remove: RemovePasskey) -> Result<PasskeyRemoved, StoreError> {
        let user = remove.user;
        let out = self.inner.remove_passkey(remove).await?;
        if matches!(out, PasskeyRemoved::Removed { .. }) {
            self.revoked_here(Revoked::User(user));
        }
        Ok(out)
    }
}

#[async_trait]
impl Sessions for CachedStore {
    async fn create_session(&self, session: NewSession) -> Result<SessionOpen, StoreError> {
        self.inner.create_session(session).await
    }

    async fn session_with_user(&self, id: SessionId) -> Result<Option<(SessionRecord, UserRecord)>, StoreError> {
        if !self.is_fresh() {
            return self.inner.session_with_user(id).await;
        }
        if let Some(hit) = self.cached(id) {
            return Ok(Some(hit));
        }
        let epoch = self.epoch.load(Ordering::Acquire);
        let read = self.inner.session_with_user(id).await?;
        if let Some((session, user)) = &read
            && session.is_live(self.clock.now())
            && user.is_active
        {
            self.remember(epoch, session, user);
        }
        Ok(read)
    }

    async fn list_sessions(&self, user: UserId, now: UnixTime) -> Result<Vec<SessionRecord>, StoreError> {
        self.inner.list_sessions(user, now).await
    }

    async fn refresh_token(&self, refresh: &RefreshTokenHash) -> Result<Option<StoredRefreshToken>, StoreError> {
        self.inner.refresh_token(refresh).await
    }

    async fn rotate_refresh(&self, req: RotateRequest) -> Result<Rotation, StoreError> {
        self.inner.rotate_refresh(req).await
    }

    async fn revoke_session(&self, user: UserId, id: SessionId, now: UnixTime) -> Result<bool, StoreError> {
        let revoked = self.inner.revoke_session(user, id, now).await?;
        if revoked {
            self.revoked_here(Revoked::Session(id));
        }
        Ok(revoked)
    }

    async fn revoke_session_of_refresh(
        &self,
        user: Option<UserId>,
        refresh: &RefreshTokenHash,
        now: UnixTime,
    ) -> Result<Option<(UserId, SessionId)>, StoreError> {
        let revoked = self.inner.revoke_session_of_refresh(user, refresh, now).await?;
        if let Some((_, session)) = revoked {
            self.revoked_here(Revoked::Session(session));
        }
        Ok(revoked)
    }

    async fn revoke_sessions(
        &self,
        user: UserId,
        keep: Option<SessionId>,
        now: UnixTime,
    ) -> Result<Vec<SessionId>, StoreError> {
        let revoked = self.inner.revoke_sessions(user, keep, now).await?;
        for id in &revoked {
            self.revoked_here(Revoked::Session(*id));
        }
        Ok(revoked)
    }
}

// Users, keys and the log are not the cache's business: they go straight through. A
// password-hash upgrade is no invalidation either: a cached user's older hash verifies
// the same password, and nothing a request checks (activity, roles, stamp) changed.
impl Over<UsersRole> for CachedStore {
    type Inner = dyn Store;

    fn inner(&self) -> &dyn Store {
        self.inner.as_ref()
    }
}

impl Over<KeysRole> for CachedStore {
    type Inner = dyn Store;

    fn inner(&self) -> &dyn Store {
        self.inner.as_ref()
    }
}

impl Over<OutboxRole> for CachedStore {
    type Inner = dyn Store;

    fn inner(&self) -> &dyn Store {
        self.inner.as_ref()
    }
}

// Steps and codes change nothing a request checks.
impl Over<SecondFactorsRole> for CachedStore {
    type Inner = dyn Store;

    fn inner(&self) -> &dyn Store {
        self.inner.as_ref()
    }
}

// A client's deletion revokes its sessions; nothing else of a client is checked.
#[async_trait]
impl Clients for CachedStore {
    async fn create_client(&self, client: StoredClient) -> Result<(), StoreError> {
        self.inner.create_client(client).await
    }

    async fn client(&self, id: ClientId) -> Result<Option<StoredClient>, StoreError> {
        if !self.is_fresh() {
            return self.inner.client(id).await;
        }
        if let Some(hit) = self.cached_client(id) {
            return Ok(Some(hit));
        }
        let epoch = self.epoch.load(Ordering::Acquire);
        let read = self.inner.client(id).await?;
        if let Some(client) = &read {
            self.remember_client(epoch, client);
        }
        Ok(read)
    }

    async fn list_clients(&self) -> Result<Vec<StoredClient>, StoreError> {
        self.inner.list_clients().await
    }

    async fn update_client(&self, id: ClientId, update: ClientUpdate, now: UnixTime) -> Result<bool, StoreError> {
        let done = self.inner.update_client(id, update, now).await?;
        if done {
            self.revoked_here(Revoked::Client(id));
        }
        Ok(done)
    }

    async fn set_client_secret(
        &self,
        id: ClientId,
        secret: ClientSecretHash,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let done = self.inner.set_client_secret(id, secret, now).await?;
        if done {
            self.revoked_here(Revoked::Client(id));
        }
        Ok(done)
    }

    async fn delete_client(&self, id: ClientId, now: UnixTime) -> Result<Option<Vec<SessionId>>, StoreError> {
        let revoked = self.inner.delete_client(id, now).await?;
        for s in revoked.iter().flatten() {
            self.revoked_here(Revoked::Session(*s));
        }
        if revoked.is_some() {
            self.revoked_here(Revoked::Client(id));
        }
        Ok(revoked)
    }
}

// Revoking a grant revokes its sessions; codes and consents are not checked per request
// (a reused code's session is revoked through `revoke_session`).
#[async_trait]
impl Grants for CachedStore {
    async fn save_code(&self, code: NewCode) -> Result<(), StoreError> {
        self.inner.save_code(code).await
    }

    async fn take_code(&self, hash: &AuthCodeHash, session: SessionId, now: UnixTime) -> Result<CodeTaken, StoreError> {
        self.inner.take_code(hash, session, now).await
    }

    async fn consent(&self, user: UserId, client: ClientId) -> Result<Option<Vec<Scope>>, StoreError> {
        self.inner.consent(user, client).await
    }

    async fn save_consent(
        &self,
        user: UserId,
        client: ClientId,
        scopes: Vec<Scope>,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        self.inner.save_consent(user, client, scopes, now).await
    }

    async fn consents(&self, user: UserId, now: UnixTime) -> Result<Vec<StoredConsent>, StoreError> {
        self.inner.consents(user, now).await
    }

    async fn revoke_grant(&self, user: UserId, client: ClientId, now: UnixTime) -> Result<GrantRevoked, StoreError> {
        let revoked = self.inner.revoke_grant(user, client, now).await?;
        for s in &revoked.sessions {
            self.revoked_here(Revoked::Session(*s));
        }
        Ok(revoked)
    }
}

// A use, a rename and a ceremony change nothing a request checks.
impl Over<PasskeysRole> for CachedStore {
    type Inner = dyn Store;

    fn inner(&self) -> &dyn Store {
        self.inner.as_ref()
    }
}

impl Over<RevocationLogRole> for CachedStore {
    type Inner = dyn Store;

    fn inner(&self) -> &dyn Store {
        self.inner.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;
    use crate::store::test_support::store_with_a_session;

    #[tokio::test]
    async fn a_revocation_written_elsewhere_is_forgotten_at_the_next_catch_up() {
        let dir = tempfile::tempdir().unwrap();
        let (inner, session, user, _) = store_with_a_session(dir.path()).await;
        let cache = CachedStore::start(inner.clone(), Arc::new(SystemClock)).await;
        assert!(cache.session_with_user(session).await.unwrap().is_some());
        assert!(cache.cached(session).is_some(), "the check is now cached");
        // Another instance revokes (straight into the database, past this cache).
        assert!(inner.revoke_session(user, session, SystemClock.now()).await.unwrap());
        cache.catch_up().await.unwrap();
        assert!(cache.cached(session).is_none());
        let (s, _) = cache.session_with_user(session).await.unwrap().unwrap();
        assert!(s.revoked_at.is_some(), "read again from the database");
    }

    #[tokio::test]
    async fn an_unreadable_log_makes_every_check_go_to_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let (inner, session, _, _) = store_with_a_session(dir.path()).await;
        let cache = CachedStore::start(inner.clone(), Arc::new(SystemClock)).await;
        assert!(cache.session_with_user(session).await.unwrap().is_some());
        assert!(cache.cached(session).is_some());
        // The database goes away: catch-ups fail, and once the lease has run out the
        // cached answer is no longer given (the check fails instead of trusting it).
        inner.close().await;
        tokio::time::sleep(LEASE + CATCH_UP).await;
        assert!(!cache.is_fresh());
        assert!(cache.session_with_user(session).await.is_err());
    }

    fn entry(user: UserId) -> Entry {
        let now = SystemClock.now();
        Entry {
            session: SessionRecord {
                id: SessionId::new(),
                user_id: user,
                created_at: now,
                last_used_at: now,
                expires_at: now.plus(60),
                revoked_at: None,
                user_agent: None,
                ip: None,
                device_name: None,
                auth: crate::domain::Authentication::new(now, &[crate::domain::AuthMethod::Pwd]),
                client: None,
            },
            user: UserRecord {
                id: user,
                username: crate::domain::Username::parse("someone").unwrap(),
                email: crate::domain::Email::parse("u@example.com").unwrap(),
                password_hash: crate::crypto::passwords::PasswordHashString(String::new()),
                is_active: true,
                roles: Vec::new(),
                created_at: now,
                security_stamp: 0,
                email_verified: false,
                mfa_enabled: false,
            },
            loaded: Instant::now(),
        }
    }

    #[test]
    fn forgetting_a_user_takes_their_entries_and_only_theirs() {
        let (alice, bob) = (UserId::new(), UserId::new());
        let mut entries = Entries::default();
        let (a1, a2, b1) = (entry(alice), entry(alice), entry(bob));
        let (a1_id, a2_id, b1_id) = (a1.session.id, a2.session.id, b1.session.id);
        for e in [a1, a2, b1] {
            entries.insert(e);
        }
        entries.remove_session(a1_id);
        assert_eq!(entries.by_user[&alice], vec![a2_id]);
        entries.remove_user(alice);
        assert!(!entries.by_session.contains_key(&a2_id) && !entries.by_user.contains_key(&alice));
        assert!(entries.by_session.contains_key(&b1_id));
        entries.retain(|_| false);
        assert!(entries.by_session.is_empty() && entries.by_user.is_empty());
    }
}
