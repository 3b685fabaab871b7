//! argon2id password hashing on its own threads (`crypto::hash_pool`: one per core,
//! at a lower scheduling priority), so a login storm cannot starve the async threads
//! that verify tokens.
//!
//! Each hash needs `m` KiB of working memory (19 MiB by default). Allocating it per
//! hash makes glibc keep freed blocks around (its mmap threshold grows to the block
//! size), and resident memory climbed to ~0.5 GiB under a login load. So each hashing
//! thread keeps one buffer for good, and memory stays at cores x m. A permit is held
//! until the hash has finished, not until its caller stops waiting: a client that
//! disconnects cannot make room for more hashes than there are threads.
//!
//! Hashes made elsewhere (an import from a FastAPI/passlib app) verify too: bcrypt
//! (`$2a$`, `$2b$`, `$2y$`, truncating at 72 bytes exactly as passlib did) and argon2
//! in any variant and cost. `is_current` says when a stored hash should be replaced
//! by argon2id at the configured cost (the login that verified it does so).
//!
//! The queue in front of the cores is bounded (a depth and a deadline): past either, a
//! hash is refused at once (`Busy`, a 503), so a flood on one route cannot make every
//! other route's hash wait without bound.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, PasswordHash, Salt, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::Instrument as _;

use super::hash_pool::HashPool;
use crate::domain::Password;

/// argon2id cost parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Argon2Params {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for Argon2Params {
    /// One of OWASP's five argon2id configurations, which its cheat sheet says give an
    /// equal level of defence and differ only in trading memory for passes: m=12 MiB,
    /// t=3, p=1. Each hashing thread keeps its buffer for good, so a server holds cores x
    /// m; against m=19 MiB, t=2 this is 7 MiB less per core and a hash 7-10% quicker here
    /// (`cargo bench --bench argon2_bound`, BENCHMARKS.md, issue 23). Hashes made at
    /// another cost still verify, and are redone at this one on their next login.
    fn default() -> Self {
        Self {
            memory_kib: 12_288,
            iterations: 3,
            parallelism: 1,
        }
    }
}

/// The argon2 memory any server accepts in a stored hash, whatever it is configured
/// with: four times OWASP's m=19 MiB, which covers argon2-cffi's and passlib's 64 MiB
/// defaults (the hashes of a FastAPI app being imported).
const FOREIGN_MEMORY_FLOOR_KIB: u32 = 4 * 19_456;

/// A stored password hash: a PHC string (`$argon2id$v=19$m=...`) as we make them, or
/// an imported bcrypt or argon2 hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasswordHashString(pub String);

/// The families of stored hash that verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scheme {
    Argon2,
    Bcrypt,
}

impl Scheme {
    fn of(stored: &str) -> Option<Self> {
        if stored.starts_with("$argon2") {
            Some(Self::Argon2)
        } else if ["$2a$", "$2b$", "$2y$"].iter().any(|p| stored.starts_with(p)) {
            Some(Self::Bcrypt)
        } else {
            None
        }
    }
}

/// The most memory an imported argon2 hash may ask for: the configurable maximum.
const MAX_FOREIGN_MEMORY_KIB: u32 = 4 * 1024 * 1024;

impl PasswordHashString {
    /// A hash made by another system, kept only if it is one that verifies here: bcrypt
    /// (`$2a$`, `$2b$`, `$2y$`) or argon2 (`argon2id`, `argon2i`, `argon2d`) at a cost
    /// within what `TOKENGATE_ARGON2_*` accept. The reason otherwise.
    pub fn foreign(raw: &str) -> Result<Self, &'static str> {
        match Scheme::of(raw) {
            Some(Scheme::Bcrypt) => raw
                .parse::<bcrypt::HashParts>()
                .map(|_| Self(raw.to_owned()))
                .map_err(|_| "malformed bcrypt hash"),
            Some(Scheme::Argon2) => {
                let parsed = PasswordHash::new(raw).map_err(|_| "malformed argon2 hash")?;
                Algorithm::try_from(parsed.algorithm).map_err(|_| "unknown argon2 variant")?;
                if let Some(v) = parsed.version {
                    Version::try_from(v).map_err(|_| "unknown argon2 version")?;
                }
                let params = Params::try_from(&parsed).map_err(|_| "malformed argon2 parameters")?;
                if params.m_cost() > MAX_FOREIGN_MEMORY_KIB || params.t_cost() > 100 || params.p_cost() > 64 {
                    return Err("argon2 cost above the configurable maximum");
                }
                if parsed.salt.is_none() || parsed.hash.is_none() {
                    return Err("argon2 hash without salt or output");
                }
                Ok(Self(raw.to_owned()))
            }
            None => Err("unknown hash format (bcrypt or argon2 expected)"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("argon2: {0}")]
    Argon2(String),
    #[error("bcrypt: {0}")]
    Bcrypt(String),
    #[error("hashing task failed: {0}")]
    Join(String),
    /// The queue is full, or the wait for a core ran past its deadline.
    #[error("password hashing queue is full")]
    Busy,
}

/// How long a hash may wait for a core before it is refused.
const QUEUE_DEADLINE: Duration = Duration::from_secs(5);

fn argon2_err(e: impl std::fmt::Display) -> HashError {
    HashError::Argon2(e.to_string())
}

/// The most a stored hash may cost to verify. One wrong-password login against a hash
/// above them would pin a hashing thread for seconds or take gigabytes (bcrypt cost 31,
/// argon2 m=4 GiB): such a hash is refused at import and never computed at login.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CostBounds {
    pub bcrypt_max_cost: u32,
    pub argon2_max_memory_kib: u32,
    pub argon2_max_iterations: u32,
    pub argon2_max_parallelism: u32,
}

/// bcrypt's cost ceiling unless configured (`TOKENGATE_BCRYPT_MAX_COST`): cost 14 is
/// ~1 s on one core, four times passlib's default (12).
pub const DEFAULT_BCRYPT_MAX_COST: u32 = 14;

impl CostBounds {
    /// The bounds for a server hashing at `params` on `cores` cores: argon2 memory up to
    /// four times the configured memory (never below [`FOREIGN_MEMORY_FLOOR_KIB`]), at
    /// most 10 passes, and lanes
    /// up to the cores (at least 8: the lanes of one hash run on one thread here, so
    /// they split its memory without multiplying its work).
    pub fn for_server(params: Argon2Params, cores: usize, bcrypt_max_cost: u32) -> Self {
        Self {
            bcrypt_max_cost,
            argon2_max_memory_kib: params.memory_kib.saturating_mul(4).max(FOREIGN_MEMORY_FLOOR_KIB),
            argon2_max_iterations: 10.max(params.iterations),
            argon2_max_parallelism: u32::try_from(cores).unwrap_or(u32::MAX).max(8).max(params.parallelism),
        }
    }

    /// Whether `stored` is within the bounds; the reason otherwise (a hash that does not
    /// parse is not this check's business: it verifies nothing).
    pub fn check(&self, stored: &PasswordHashString) -> Result<(), String> {
        match Scheme::of(&stored.0) {
            Some(Scheme::Bcrypt) => match stored.0.parse::<bcrypt::HashParts>() {
                Ok(parts) if parts.get_cost() > self.bcrypt_max_cost => Err(format!(
                    "bcrypt cost {} is above the maximum {} (TOKENGATE_BCRYPT_MAX_COST)",
                    parts.get_cost(),
                    self.bcrypt_max_cost
                )),
                _ => Ok(()),
            },
            Some(Scheme::Argon2) => {
                let Ok(parsed) = PasswordHash::new(&stored.0) else {
                    return Ok(());
                };
                let Ok(p) = Params::try_from(&parsed) else {
                    return Ok(());
                };
                if p.m_cost() > self.argon2_max_memory_kib {
                    return Err(format!(
                        "argon2 memory {} KiB is above the maximum {} KiB (4x TOKENGATE_ARGON2_MEMORY_KIB)",
                        p.m_cost(),
                        self.argon2_max_memory_kib
                    ));
                }
                if p.t_cost() > self.argon2_max_iterations {
                    return Err(format!(
                        "argon2 iterations {} are above the maximum {}",
                        p.t_cost(),
                        self.argon2_max_iterations
                    ));
                }
                if p.p_cost() > self.argon2_max_parallelism {
                    return Err(format!(
                        "argon2 parallelism {} is above the maximum {}",
                        p.p_cost(),
                        self.argon2_max_parallelism
                    ));
                }
                Ok(())
            }
            None => Ok(()),
        }
    }
}

/// Hashes and verifies passwords; cheap to clone.
#[derive(Clone)]
pub struct PasswordHasher {
    params: Params,
    bounds: CostBounds,
    permits: Arc<Semaphore>,
    /// The hashing threads, one per permit.
    pool: Arc<HashPool>,
    /// Verified against when the user does not exist, so that costs one hash too.
    dummy: Arc<PasswordHashString>,
    /// Hashes waiting for a permit now, and the most that may wait.
    waiting: Arc<AtomicUsize>,
    max_waiting: usize,
    /// Hashes refused because the queue was full (for logs and metrics).
    refused: Arc<AtomicU64>,
    concurrency: usize,
}

/// What the hashing pool is doing now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashLoad {
    pub in_flight: usize,
    pub waiting: usize,
    pub refused: u64,
}

impl PasswordHasher {
    /// `concurrency` hashes at most run at once (the number of cores is right), and at
    /// most `max_waiting` wait for their turn.
    pub fn new(params: Argon2Params, concurrency: usize, max_waiting: usize) -> Result<Self, HashError> {
        let params = Params::new(params.memory_kib, params.iterations, params.parallelism, None).map_err(argon2_err)?;
        let dummy_password = random_password()?;
        let pool = HashPool::start(concurrency.max(1)).map_err(argon2_err)?;
        // On a hashing thread, whose working memory it becomes: a buffer this big,
        // allocated and freed here, would raise glibc's mmap threshold, after which
        // big buffers come from heap arenas that keep what they once held.
        let (sender, receiver) = std::sync::mpsc::channel();
        let dummy_params = params.clone();
        let started = pool.submit(Box::new(move |mem| {
            let _ = sender.send(hash_new(&dummy_params, &dummy_password, mem));
        }));
        let dummy = match receiver.recv() {
            Ok(result) if started => result?,
            _ => return Err(HashError::Join("the hashing threads did not start".into())),
        };
        let configured = Argon2Params {
            memory_kib: params.m_cost(),
            iterations: params.t_cost(),
            parallelism: params.p_cost(),
        };
        Ok(Self {
            bounds: CostBounds::for_server(configured, concurrency, DEFAULT_BCRYPT_MAX_COST),
            params,
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            pool: Arc::new(pool),
            dummy: Arc::new(dummy),
            waiting: Arc::new(AtomicUsize::new(0)),
            max_waiting,
            refused: Arc::new(AtomicU64::new(0)),
            concurrency: concurrency.max(1),
        })
    }

    /// The same hasher with bcrypt hashes bounded at `cost` (`TOKENGATE_BCRYPT_MAX_COST`).
    pub fn with_bcrypt_max_cost(mut self, cost: u32) -> Self {
        self.bounds.bcrypt_max_cost = cost;
        self
    }

    /// What a stored hash may cost to verify here.
    pub fn bounds(&self) -> CostBounds {
        self.bounds
    }

    /// Whether `stored` is argon2id (v=19) at the configured cost; any other hash is
    /// replaced at the next login that verifies it (passlib's `deprecated="auto"`).
    pub fn is_current(&self, stored: &PasswordHashString) -> bool {
        let Ok(parsed) = PasswordHash::new(&stored.0) else {
            return false;
        };
        let Ok(params) = Params::try_from(&parsed) else {
            return false;
        };
        Algorithm::try_from(parsed.algorithm) == Ok(Algorithm::Argon2id)
            && parsed.version == Some(Version::V0x13.into())
            && params.m_cost() == self.params.m_cost()
            && params.t_cost() == self.params.t_cost()
            && params.p_cost() == self.params.p_cost()
            && parsed.hash.map(|h| h.len()) == Some(Params::DEFAULT_OUTPUT_LEN)
    }

    /// Hashes refused so far because the queue was full.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Hashes running and waiting now, for metrics.
    pub fn load(&self) -> HashLoad {
        HashLoad {
            in_flight: self.concurrency.saturating_sub(self.permits.available_permits()),
            waiting: self.waiting.load(Ordering::Relaxed),
            refused: self.refused(),
        }
    }

    /// Wait for a core, unless too many wait already or the wait runs too long.
    async fn permit(&self) -> Result<OwnedSemaphorePermit, HashError> {
        if let Ok(p) = self.permits.clone().try_acquire_owned() {
            return Ok(p);
        }
        let queued = self.waiting.fetch_add(1, Ordering::AcqRel);
        let permit = if queued >= self.max_waiting {
            None
        } else {
            tokio::time::timeout(QUEUE_DEADLINE, self.permits.clone().acquire_owned())
                .await
                .ok()
                .and_then(Result::ok)
        };
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        permit.ok_or_else(|| {
            let n = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
            // The first refusal and every 100th after it: a flood must not flood the log.
            if n % 100 == 1 {
                tracing::warn!(
                    refused_total = n,
                    waiting = queued,
                    "password hashing queue full; answering 503"
                );
            }
            HashError::Busy
        })
    }

    /// Hash a new password with a fresh random salt.
    pub async fn hash(&self, password: Password) -> Result<PasswordHashString, HashError> {
        let params = self.params.clone();
        self.run("password.hash", move |mem| hash_new(&params, &password, mem))
            .await?
    }

    /// The hash of a random password thrown away: a password no one knows (an account
    /// whose registrant's password must stop working).
    pub async fn hash_unguessable(&self) -> Result<PasswordHashString, HashError> {
        self.hash(random_password()?).await
    }

    /// Check a password against a stored hash. `None` (no such user) still costs one
    /// full verification against a dummy hash and answers `false`.
    /// A stored hash above the cost bounds (imported before they existed, or written to
    /// the database directly) is not computed: it costs the dummy hash and answers
    /// `false`, logged, so the account needs a reset.
    pub async fn verify(&self, password: Password, stored: Option<PasswordHashString>) -> Result<bool, HashError> {
        let (target, real) = match stored {
            Some(h) => match self.bounds.check(&h) {
                Ok(()) => (h, true),
                Err(why) => {
                    tracing::warn!(reason = %why, "a stored password hash is over the cost bounds and was not verified; reset that password");
                    ((*self.dummy).clone(), false)
                }
            },
            None => ((*self.dummy).clone(), false),
        };
        // A stored hash we cannot parse verifies nothing; it is not the client's fault.
        let keep = self.params.block_count();
        let ok = self
            .run("password.verify", move |mem| {
                verify_with(&password, &target, mem, keep).unwrap_or(false)
            })
            .await?;
        Ok(ok && real)
    }

    /// Run `job` on the blocking pool, holding a permit and a pooled buffer; traced as
    /// `name` (the wait for a core included).
    async fn run<T: Send + 'static>(
        &self,
        name: &'static str,
        job: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let span = tracing::debug_span!("password", otel.name = name);
        self.run_job(job).instrument(span).await
    }

    async fn run_job<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let permit = self.permit().await?;
        let (done, result) = tokio::sync::oneshot::channel();
        let submitted = self.pool.submit(Box::new(move |mem| {
            let started = std::time::Instant::now();
            let out = job(mem);
            metrics::histogram!(crate::metrics::HASH_DURATION).record(started.elapsed().as_secs_f64());
            // Only now may another hash start, whether or not anyone still waits.
            drop(permit);
            let _ = done.send(out);
        }));
        if !submitted {
            return Err(HashError::Join("the hashing threads are gone".into()));
        }
        result
            .await
            .map_err(|_| HashError::Join("a hashing thread stopped mid-hash".into()))
    }
}

/// argon2 over `mem`, grown to the parameters' block count and kept, up to `keep`
/// blocks (the configured cost). An imported hash that needs more gets a buffer of its
/// own, freed after: one old hash must not make a thread hold its memory for good.
fn compute(
    algorithm: Algorithm,
    version: Version,
    params: Params,
    password: &Password,
    salt: Salt<'_>,
    mem: &mut Vec<Block>,
    keep: usize,
) -> Result<Output, HashError> {
    let needed = params.block_count();
    let mut one_off = Vec::new();
    let mem = if needed > mem.len().max(keep) {
        one_off.resize(needed, Block::default());
        &mut one_off
    } else {
        if mem.len() < needed {
            mem.resize(needed, Block::default());
        }
        mem
    };
    let mut salt_buf = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_buf).map_err(argon2_err)?;
    let out_len = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    let argon2 = Argon2::new(algorithm, version, params);
    Output::init_with(out_len, |out| {
        argon2
            .hash_password_into_with_memory(password.expose().as_bytes(), salt_bytes, out, &mut mem[..])
            .map_err(|_| argon2::password_hash::Error::Crypto)
    })
    .map_err(argon2_err)
}

fn hash_new(params: &Params, password: &Password, mem: &mut Vec<Block>) -> Result<PasswordHashString, HashError> {
    let salt = SaltString::generate(&mut OsRng);
    let (algorithm, version) = (Algorithm::Argon2id, Version::V0x13);
    let keep = params.block_count();
    let output = compute(algorithm, version, params.clone(), password, salt.as_salt(), mem, keep)?;
    let phc = PasswordHash {
        algorithm: algorithm.ident(),
        version: Some(version.into()),
        params: ParamsString::try_from(params).map_err(argon2_err)?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(PasswordHashString(phc.to_string()))
}

/// Recompute with the stored hash's own algorithm, version and cost; compare the
/// outputs in constant time (`Output`'s `PartialEq`; the bcrypt crate's own compare).
fn verify_with(
    password: &Password,
    stored: &PasswordHashString,
    mem: &mut Vec<Block>,
    keep: usize,
) -> Result<bool, HashError> {
    match Scheme::of(&stored.0) {
        // Truncates at 72 bytes, as passlib's bcrypt did when it made the hash.
        Some(Scheme::Bcrypt) => {
            return bcrypt::verify(password.expose().as_bytes(), &stored.0)
                .map_err(|e| HashError::Bcrypt(e.to_string()));
        }
        Some(Scheme::Argon2) => {}
        None => return Ok(false),
    }
    let parsed = PasswordHash::new(&stored.0).map_err(argon2_err)?;
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return Ok(false);
    };
    let algorithm = Algorithm::try_from(parsed.algorithm).map_err(argon2_err)?;
    let version = parsed
        .version
        .map(Version::try_from)
        .transpose()
        .map_err(argon2_err)?
        .unwrap_or_default();
    let params = Params::try_from(&parsed).map_err(argon2_err)?;
    let computed = compute(algorithm, version, params, password, salt, mem, keep)?;
    Ok(computed == expected)
}

/// 192 random bits, as a password.
fn random_password() -> Result<Password, HashError> {
    let mut raw = [0u8; 24];
    getrandom::fill(&mut raw).map_err(argon2_err)?;
    Password::candidate(&hex(&raw)).ok_or_else(|| argon2_err("random password"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> PasswordHasher {
        PasswordHasher::new(
            Argon2Params {
                memory_kib: 64,
                iterations: 1,
                parallelism: 1,
            },
            2,
            8,
        )
        .unwrap()
    }

    #[tokio::test]
    async fn a_stored_hash_over_the_bounds_is_never_computed() {
        let h = cheap();
        // bcrypt cost 31 is 2^31 rounds: hours on one core, if it were computed.
        let cost31 = PasswordHashString(format!(
            "$2b$31${}",
            "N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"
        ));
        let huge = PasswordHashString(
            "$argon2id$v=19$m=4194304,t=100,p=64$c29tZXNhbHRzb21lc2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"
                .into(),
        );
        for stored in [cost31, huge] {
            assert!(h.bounds().check(&stored).is_err());
            let pw = Password::candidate("whatever-password").unwrap();
            let answer = tokio::time::timeout(std::time::Duration::from_secs(20), h.verify(pw, Some(stored)));
            assert!(!answer.await.expect("answered at the dummy hash's cost").unwrap());
        }
        // Within the bounds: computed as usual.
        let ok = bcrypt_as("hunter2-hunter2", bcrypt::Version::TwoB);
        assert!(h.bounds().check(&ok).is_ok());
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once_instead_of_waiting() {
        // One core, one waiting slot, a hash that takes a while.
        let h = PasswordHasher::new(
            Argon2Params {
                memory_kib: 32 * 1024,
                iterations: 4,
                parallelism: 1,
            },
            1,
            1,
        )
        .unwrap();
        let tasks: Vec<_> = (0..6)
            .map(|_| {
                let h = h.clone();
                tokio::spawn(async move { h.hash(Password::parse("queue test pw").unwrap()).await })
            })
            .collect();
        let mut busy = 0;
        let mut done = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => done += 1,
                Err(HashError::Busy) => busy += 1,
                Err(e) => panic!("{e}"),
            }
        }
        // One runs, one waits: the other four are refused, and counted.
        assert!(done >= 2, "done {done}");
        assert!(busy >= 1, "busy {busy}");
        assert_eq!(done + busy, 6);
        assert_eq!(h.refused(), busy as u64);
    }

    #[tokio::test]
    async fn hash_then_verify() {
        let h = cheap();
        let pw = Password::parse("correct horse battery").unwrap();
        let stored = h.hash(pw.clone()).await.unwrap();
        assert!(stored.0.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert!(h.verify(pw, Some(stored.clone())).await.unwrap());
        let wrong = Password::parse("correct horse battery!").unwrap();
        assert!(!h.verify(wrong, Some(stored)).await.unwrap());
    }

    #[tokio::test]
    async fn unknown_user_never_verifies() {
        let h = cheap();
        let pw = Password::parse("anything at all").unwrap();
        assert!(!h.verify(pw, None).await.unwrap());
    }

    #[tokio::test]
    async fn agrees_with_the_reference_implementation() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let h = cheap();
        let pw = Password::parse("interop password").unwrap();
        // Ours verifies with the crate's own verifier...
        let ours = h.hash(pw.clone()).await.unwrap();
        let parsed = PasswordHash::new(&ours.0).unwrap();
        assert!(
            Argon2::default()
                .verify_password(pw.expose().as_bytes(), &parsed)
                .is_ok()
        );
        // ...and a hash from the crate's own hasher (other cost) verifies with ours.
        let salt = SaltString::generate(&mut OsRng);
        let theirs = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(128, 2, 1, None).unwrap(),
        )
        .hash_password(pw.expose().as_bytes(), &salt)
        .unwrap()
        .to_string();
        assert!(
            h.verify(pw.clone(), Some(PasswordHashString(theirs.clone())))
                .await
                .unwrap()
        );
        let wrong = Password::parse("interop passwore").unwrap();
        assert!(!h.verify(wrong, Some(PasswordHashString(theirs))).await.unwrap());
    }

    fn bcrypt_as(password: &str, version: bcrypt::Version) -> PasswordHashString {
        let parts = bcrypt::hash_with_result(password, 4).unwrap();
        PasswordHashString(parts.format_for_version(version))
    }

    #[tokio::test]
    async fn bcrypt_hashes_of_every_prefix_verify_and_are_not_current() {
        let h = cheap();
        let pw = Password::parse("tutorial password").unwrap();
        for version in [bcrypt::Version::TwoA, bcrypt::Version::TwoB, bcrypt::Version::TwoY] {
            let stored = bcrypt_as(pw.expose(), version);
            assert_eq!(PasswordHashString::foreign(&stored.0), Ok(stored.clone()));
            assert!(
                h.verify(pw.clone(), Some(stored.clone())).await.unwrap(),
                "{}",
                &stored.0[..4]
            );
            let wrong = Password::parse("tutorial passwore").unwrap();
            assert!(!h.verify(wrong, Some(stored.clone())).await.unwrap());
            assert!(!h.is_current(&stored));
        }
    }

    #[tokio::test]
    async fn bcrypt_truncates_at_72_bytes_as_passlib_did() {
        let h = cheap();
        let long = "x".repeat(72);
        let stored = bcrypt_as(&format!("{long}-first-tail"), bcrypt::Version::TwoB);
        // Only the first 72 bytes ever counted: another tail verifies too.
        let other_tail = Password::candidate(&format!("{long}-other")).unwrap();
        assert!(h.verify(other_tail, Some(stored.clone())).await.unwrap());
        let shorter = Password::candidate(&"x".repeat(71)).unwrap();
        assert!(!h.verify(shorter, Some(stored)).await.unwrap());
    }

    #[tokio::test]
    async fn argon2_of_other_variants_and_costs_verify_and_are_not_current() {
        use argon2::password_hash::PasswordHasher as _;
        let h = cheap();
        let pw = Password::parse("argon2-cffi password").unwrap();
        let make = |alg, m, t, p| {
            let salt = SaltString::generate(&mut OsRng);
            let hash = Argon2::new(alg, Version::V0x13, Params::new(m, t, p, None).unwrap())
                .hash_password(pw.expose().as_bytes(), &salt)
                .unwrap()
                .to_string();
            PasswordHashString(hash)
        };
        // argon2-cffi's defaults are m=65536,t=3,p=4: more memory than configured here,
        // so the verification gets a buffer of its own.
        let cases = [
            make(Algorithm::Argon2id, 65_536, 3, 4),
            make(Algorithm::Argon2i, 64, 1, 1),
            make(Algorithm::Argon2d, 64, 1, 1),
            make(Algorithm::Argon2id, 128, 1, 1),
        ];
        for stored in cases {
            assert_eq!(PasswordHashString::foreign(&stored.0), Ok(stored.clone()));
            assert!(
                h.verify(pw.clone(), Some(stored.clone())).await.unwrap(),
                "{}",
                stored.0
            );
            assert!(!h.is_current(&stored), "{}", stored.0);
        }
        // Ours, at the configured cost, is current.
        let ours = h.hash(pw).await.unwrap();
        assert!(h.is_current(&ours));
    }

    #[test]
    fn foreign_hashes_we_cannot_verify_are_refused_with_a_reason() {
        for raw in [
            "",
            "plaintext-password",
            "5f4dcc3b5aa765d61d8327deb882cf99",
            "$1$saltsalt$abcdefghijklmnopqrstuv",
            "$pbkdf2-sha256$29000$abc$def",
            "$2x$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
            "$2b$12$tooshort",
            "$argon2id$v=19$m=65536,t=3,p=4$",
            "$argon2id$v=19$m=999999999,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
            "$argon2x$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
        ] {
            assert!(PasswordHashString::foreign(raw).is_err(), "{raw:?} accepted");
        }
    }

    #[tokio::test]
    async fn garbage_hash_is_false_not_error() {
        let h = cheap();
        let pw = Password::parse("anything at all").unwrap();
        let bad = PasswordHashString("not-a-phc-string".into());
        assert!(!h.verify(pw, Some(bad)).await.unwrap());
    }
}
