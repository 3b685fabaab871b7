//! The argon2 bound: how many logins per second this machine can verify at most, at
//! the configured parameters (`TOKENGATE_ARGON2_MEMORY_KIB`, `_ITERATIONS`,
//! `_PARALLELISM`, else the defaults): cores / the time of one hash, measured through
//! tokengate's own hasher one hash at a time. Also what the machine really does with
//! every core hashing at once (`all_cores_per_s`): the hashes then share the memory
//! bus and the last-level cache, so each takes longer than alone, and no server can
//! verify logins faster than that.
//!
//!     cargo bench --bench argon2_bound
//!
//! Prints `single_hash_ms=... cores=... bound_per_s=... all_cores_per_s=...` for
//! bench/run.sh to read.

use std::time::{Duration, Instant};

use tokengate::crypto::passwords::{Argon2Params, PasswordHasher};
use tokengate::domain::Password;

fn param(name: &str, default: u32) -> u32 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let d = Argon2Params::default();
    let params = Argon2Params {
        memory_kib: param("TOKENGATE_ARGON2_MEMORY_KIB", d.memory_kib),
        iterations: param("TOKENGATE_ARGON2_ITERATIONS", d.iterations),
        parallelism: param("TOKENGATE_ARGON2_PARALLELISM", d.parallelism),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let hasher = PasswordHasher::new(params, 1, 4).expect("argon2 parameters");
    let password = Password::parse("benchmark-password").expect("password");
    // Warm up (page faults of the first buffer), then the median of 15 single hashes.
    let mut times: Vec<Duration> = (0..17)
        .map(|_| {
            let started = Instant::now();
            runtime.block_on(hasher.hash(password.clone())).expect("hash");
            started.elapsed()
        })
        .skip(2)
        .collect();
    times.sort();
    let median = times[times.len() / 2].as_secs_f64();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Every core hashing: the pool as wide as the machine, always a hash queued.
    let all = PasswordHasher::new(params, cores, cores * 40).expect("argon2 parameters");
    let count = cores * 30;
    let started = Instant::now();
    runtime.block_on(async {
        let hashes: Vec<_> = (0..count)
            .map(|_| {
                tokio::spawn({
                    let (all, password) = (all.clone(), password.clone());
                    async move { all.hash(password).await }
                })
            })
            .collect();
        for h in hashes {
            h.await.expect("task").expect("hash");
        }
    });
    let all_cores_per_s = count as f64 / started.elapsed().as_secs_f64();
    println!(
        "argon2id m={} KiB t={} p={}: single_hash_ms={:.2} cores={} bound_per_s={:.1} all_cores_per_s={:.1}",
        params.memory_kib,
        params.iterations,
        params.parallelism,
        median * 1000.0,
        cores,
        cores as f64 / median,
        all_cores_per_s
    );
}
