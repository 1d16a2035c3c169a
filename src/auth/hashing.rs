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

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::core::password;
use crate::core::types::Password;

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
        crate::metrics::hash_dequeued();
        let _ = reply.send(f());
    });
    crate::metrics::hash_queued();
    if queue().send(job).is_err() {
        crate::metrics::hash_dequeued();
        return Err(HashingError);
    }
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

/// Password hashing and checking for the service: at the configured cost,
/// on the hashing threads, taking the same time whoever is checked, and
/// never more than a few at once for one network.
pub struct Hasher {
    /// The configured bcrypt cost, for new hashes.
    cost: u32,
    /// The cost every check is made to take: the configured one, or a
    /// higher one that some stored hash still has (from before a change of
    /// `--bcrypt-cost`).
    check_cost: u32,
    /// A hash of a random password at `check_cost` (what an unknown
    /// username is checked against), made on first use or by `warm_up`.
    dummy: tokio::sync::OnceCell<String>,
    /// How long one check at `check_cost` takes here (µs), kept up to date
    /// from the checks made at that cost.
    check_micros: AtomicU64,
    /// Password checks in progress or waiting, per network
    /// (`ClientAddress::key`).
    in_flight: Mutex<HashMap<String, Slot>>,
}

/// One network's checks: a semaphore with `limit` places, and how many hold
/// or wait for one.
struct Slot {
    places: Arc<tokio::sync::Semaphore>,
    users: usize,
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Hasher(cost {}, checks at {})", self.cost, self.check_cost)
    }
}

impl Hasher {
    /// `stored` are the password hashes in the database, for their costs.
    pub fn new(cost: u32, stored: &[String]) -> Self {
        let check_cost = stored
            .iter()
            .filter_map(|h| password::cost_of(h))
            .chain([cost])
            .max()
            .unwrap_or(cost);
        if check_cost != cost {
            tracing::info!(
                configured = cost,
                check_cost,
                "some password hashes still have a higher bcrypt cost; every check takes as long as one at cost {check_cost} until they are upgraded at sign-in"
            );
        }
        Self {
            cost,
            check_cost,
            dummy: tokio::sync::OnceCell::new(),
            check_micros: AtomicU64::new(0),
            in_flight: Mutex::new(HashMap::new()),
        }
    }

    /// Make the dummy hash and time one check now, so the first unknown
    /// username already takes as long as a real one (the server does this
    /// at start; the command line never checks a password).
    pub async fn warm_up(&self) -> Result<(), HashingError> {
        self.dummy().await.map(|_| ())
    }

    async fn dummy(&self) -> Result<&String, HashingError> {
        self.dummy
            .get_or_try_init(|| async {
                let cost = self.check_cost;
                let dummy = run(move || password::dummy_hash(cost)).await?;
                let probe = dummy.clone();
                let micros = run(move || {
                    let started = Instant::now();
                    password::verify("probe", &probe);
                    started.elapsed().as_micros() as u64
                })
                .await?;
                self.check_micros.store(micros, Ordering::Relaxed);
                Ok(dummy)
            })
            .await
    }

    pub fn cost(&self) -> u32 {
        self.cost
    }

    /// Hash a new password at the configured cost.
    pub async fn hash(&self, password: Password) -> Result<String, HashingError> {
        let cost = self.cost;
        run(move || password::hash(password.expose(), cost))
            .await?
            .map_err(|_| HashingError)
    }

    /// Whether `password` matches `stored`; with no stored hash (an unknown
    /// username) the dummy hash is checked and the answer is `false`. The
    /// answer always takes as long as one check at `check_cost`: a hash made
    /// at a lower cost is checked, then the rest of the time is waited out
    /// (asleep, not spinning), so the time does not tell whether the
    /// account exists or how old its hash is.
    pub async fn verify(&self, password: Password, stored: Option<String>) -> Result<bool, HashingError> {
        let known = stored.is_some();
        let hash = match stored {
            Some(h) => h,
            None => self.dummy().await?.clone(),
        };
        // The target time needs a measured check at `check_cost`.
        self.dummy().await?;
        let at_check_cost = password::cost_of(&hash) == Some(self.check_cost);
        let started = Instant::now();
        let matched = run(move || password::verify(password.expose(), &hash)).await?;
        let took = started.elapsed();
        if at_check_cost {
            // An average over the recent checks (weight 1/8 for the new one).
            let old = self.check_micros.load(Ordering::Relaxed);
            let new = (old * 7 + took.as_micros() as u64) / 8;
            self.check_micros.store(new, Ordering::Relaxed);
        } else {
            let target = Duration::from_micros(self.check_micros.load(Ordering::Relaxed));
            if let Some(rest) = target.checked_sub(took) {
                actix_web::rt::time::sleep(rest).await;
            }
        }
        Ok(matched && known)
    }

    /// A place for one more password check from `network`: at most `limit`
    /// run at once, up to `queue` more wait for a place (costing nothing
    /// but memory), and beyond that the answer is `None` at once. The place
    /// is given back when the guard drops (also if the request is dropped
    /// while it waits).
    pub async fn enter(&self, network: &str, limit: usize, queue: usize) -> Option<InFlight<'_>> {
        let places = {
            let mut map = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            let slot = map.entry(network.to_string()).or_insert_with(|| Slot {
                places: Arc::new(tokio::sync::Semaphore::new(limit)),
                users: 0,
            });
            if slot.users >= limit + queue {
                return None;
            }
            slot.users += 1;
            slot.places.clone()
        };
        let mut guard = InFlight {
            hasher: self,
            network: network.to_string(),
            _permit: None,
        };
        guard._permit = Some(places.acquire_owned().await.ok()?);
        Some(guard)
    }
}

/// A password check in progress for one network (see `Hasher::enter`).
pub struct InFlight<'a> {
    hasher: &'a Hasher,
    network: String,
    _permit: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut map = self.hasher.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = map.get_mut(&self.network) {
            slot.users -= 1;
            if slot.users == 0 {
                map.remove(&self.network);
            }
        }
    }
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

    #[test]
    fn checks_take_as_long_whatever_the_stored_cost() {
        actix_web::rt::System::new().block_on(async {
            let cheap = password::hash("right", 4).unwrap();
            let hasher = Hasher::new(8, std::slice::from_ref(&cheap));
            assert!(
                hasher
                    .verify(Password::new("right".into()), Some(cheap.clone()))
                    .await
                    .unwrap()
            );
            assert!(
                !hasher
                    .verify(Password::new("wrong".into()), Some(cheap.clone()))
                    .await
                    .unwrap()
            );
            assert!(!hasher.verify(Password::new("x".into()), None).await.unwrap());
            // A cost-4 hash is checked ~16 times faster than a cost-8 one;
            // the answer still waits for about as long as a cost-8 check.
            let time = |stored: Option<String>| {
                let hasher = &hasher;
                async move {
                    let t = Instant::now();
                    hasher.verify(Password::new("guess".into()), stored).await.unwrap();
                    t.elapsed()
                }
            };
            let mut unknown = vec![];
            let mut old_hash = vec![];
            for _ in 0..5 {
                unknown.push(time(None).await);
                old_hash.push(time(Some(cheap.clone())).await);
            }
            unknown.sort();
            old_hash.sort();
            let (u, o) = (unknown[2].as_secs_f64(), old_hash[2].as_secs_f64());
            assert!(
                o > u * 0.5,
                "a cost-4 account answers in {o:.4}s, an unknown name in {u:.4}s"
            );
        });
    }

    #[test]
    fn at_most_limit_checks_per_network_and_a_bounded_queue() {
        actix_web::rt::System::new().block_on(async {
            let hasher = Hasher::new(4, &[]);
            let a = hasher.enter("198.51.100.1", 2, 1).await.unwrap();
            let b = hasher.enter("198.51.100.1", 2, 1).await.unwrap();
            // A third waits for a place; a fourth is refused at once.
            let mut third = Box::pin(hasher.enter("198.51.100.1", 2, 1));
            assert!(futures_util::FutureExt::now_or_never(third.as_mut()).is_none());
            assert!(hasher.enter("198.51.100.1", 2, 1).await.is_none());
            assert!(
                hasher.enter("198.51.100.2", 2, 1).await.is_some(),
                "other networks are not affected"
            );
            drop(a);
            let c = third.await.expect("the waiting check gets the freed place");
            drop(b);
            drop(c);
            assert!(hasher.in_flight.lock().unwrap().get("198.51.100.1").is_none());
            // A waiter that gives up gives its place in the queue back.
            let x = hasher.enter("198.51.100.3", 1, 1).await.unwrap();
            let mut waiting = Box::pin(hasher.enter("198.51.100.3", 1, 1));
            assert!(futures_util::FutureExt::now_or_never(waiting.as_mut()).is_none());
            drop(waiting);
            drop(x);
            assert!(hasher.in_flight.lock().unwrap().get("198.51.100.3").is_none());
        });
    }
}
