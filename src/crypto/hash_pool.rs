//! The threads that run argon2: one per core, each keeping its own working memory
//! (so memory stays at threads x m, whatever the load), at a lower scheduling
//! priority than the request threads: during a login storm the kernel still runs
//! token checks first, and hashing takes the cores whenever they are otherwise idle.

use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, PoisonError};

use argon2::Block;

/// How much lower than the request threads: the lowest nice value. Against a busy
/// request thread hashing gets about 1.5% of a core (weight 15 to 1024), all of an idle
/// one, and a waking request thread preempts it at once. Measured against 10 and
/// against `SCHED_IDLE` (BENCHMARKS.md, issue 12): with 19, `GET /me` during a login
/// storm keeps ~80% of its unloaded rate (10: ~70%) and logins still progress (30-40/s
/// beside the storm; `SCHED_IDLE` let them fall to 15/s), login alone unchanged.
pub const HASH_NICE: i32 = 19;

/// A unit of hashing work, given the thread's working memory.
pub type Job = Box<dyn FnOnce(&mut Vec<Block>) + Send>;

pub struct HashPool {
    jobs: Sender<Job>,
}

impl HashPool {
    /// Start `threads` hashing threads.
    pub fn start(threads: usize) -> std::io::Result<Self> {
        let (jobs, queue) = channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..threads.max(1) {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || work(&queue))?;
        }
        Ok(Self { jobs })
    }

    /// Queue `job`; `false` if the threads are gone (they never exit while the pool lives).
    pub fn submit(&self, job: Job) -> bool {
        self.jobs.send(job).is_ok()
    }
}

fn work(queue: &Mutex<Receiver<Job>>) {
    lower_priority();
    let mut memory = Vec::new();
    loop {
        let next = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
        match next {
            // A panic is the job's alone (its caller sees its answer channel close);
            // the thread and its memory stay for the next one.
            Ok(job) => {
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(&mut memory)));
            }
            Err(_) => return, // the pool was dropped
        }
    }
}

/// Raise this thread's nice value (Linux: nice is per thread). Lowering one's own
/// priority needs no privilege; if it is refused anyway, hashing runs at normal
/// priority and says so once.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid and setpriority take plain integers and touch no memory of ours.
        let refused = unsafe {
            let tid = libc::gettid();
            libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, HASH_NICE) != 0
        };
        if refused {
            tracing::warn!(
                error = %std::io::Error::last_os_error(),
                "password hashing runs at normal priority: its nice value could not be raised"
            );
        }
    }
}
