//! A small dedicated pool for password hashing (bcrypt), apart from the
//! database work. Measured in docs/PERFORMANCE.md.
//!
//! bcrypt takes about a quarter of a second of CPU at cost 12. Run on actix's
//! blocking pool (`web::block`), every sign-in had a thread of its own: more
//! hashes at once than cores only time-slice each other (no sign-in finishes
//! sooner, memory grows with the threads), and they shared the CPU — and the
//! pool — with the short database tasks of every other request, so pages
//! slowed down whenever people signed in. Here hashing runs on one thread per
//! core, taking jobs in arrival order: all cores hash when there is work, no
//! more hashes run than there are cores, and the database calls keep their
//! own threads, so a cheap request never queues behind a hash. (A lower
//! priority for these threads, nice +10, trimmed the worst page latencies
//! further but let any other busy process on the machine starve sign-ins, so
//! they run at normal priority.) What is computed is unchanged.

use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};

type Job = Box<dyn FnOnce() + Send>;

#[derive(Debug, thiserror::Error)]
#[error("the password hashing job did not finish")]
pub struct HashingError;

/// Run `f` on the hashing threads; resolves when it has finished.
pub async fn run<T, F>(f: F) -> Result<T, HashingError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let (reply, answer) = tokio::sync::oneshot::channel();
    // A job that panics drops `reply`, which ends the wait with an error.
    let job: Job = Box::new(move || {
        let _ = reply.send(f());
    });
    queue().send(job).map_err(|_| HashingError)?;
    answer.await.map_err(|_| HashingError)
}

fn queue() -> &'static mpsc::Sender<Job> {
    static QUEUE: OnceLock<mpsc::Sender<Job>> = OnceLock::new();
    QUEUE.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        for i in 0..threads {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("latchkey-hash-{i}"))
                .spawn(move || {
                    loop {
                        let job = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        let Ok(job) = job else { return };
                        // A panicking job ends its request with an error; the
                        // thread lives on.
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                    }
                })
                .expect("cannot start a password hashing thread");
        }
        tx
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_jobs_and_survives_a_panic() {
        let rt = actix_web::rt::System::new();
        rt.block_on(async {
            assert_eq!(run(|| 2 + 2).await.unwrap(), 4);
            assert!(run(|| -> u32 { panic!("boom") }).await.is_err());
            let many: Vec<_> = (0..20u32).map(|i| run(move || i * 2)).collect();
            for (i, r) in many.into_iter().enumerate() {
                assert_eq!(r.await.unwrap(), i as u32 * 2);
            }
        });
    }
}
