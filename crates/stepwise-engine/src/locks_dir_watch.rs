//! The engine's one filesystem watch on the locks directory, for two kinds of interest in the
//! files there, without a thread each and without polling:
//!
//! - **Waiting for runs other processes hold.** A holder lets go of a run by closing its lock
//!   file, and a process that dies has its files closed by the kernel; either way the watch
//!   sees the file closed after writing (or removed) and the waiter tries the lock. The kernel
//!   reports the close a moment before it releases the lock, so a try that finds the lock
//!   still held right after a close is repeated a few times over ~250 ms before the waiter
//!   goes back to waiting for the next event. Waiters keep their lock file open between tries,
//!   so that their failed tries make no events that would wake each other.
//! - **Following progress files** (see `progress`): a follower is woken whenever its file is
//!   created, written, closed or removed, by whichever process.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, EventKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use stepwise_core::ids::RunId;
use tokio::runtime::Handle;
use tokio::sync::Notify;

use crate::error::EngineError;
use crate::lock::{LockCandidate, RunLock};

/// The pauses between the tries that follow a close.
const RETRIES_AFTER_CLOSE: [Duration; 6] = [
    Duration::from_millis(1),
    Duration::from_millis(4),
    Duration::from_millis(10),
    Duration::from_millis(25),
    Duration::from_millis(60),
    Duration::from_millis(150),
];

/// How often a waiter tries the lock when there is no watch to say when to.
const UNWATCHED_TRIES: Duration = Duration::from_millis(250);

/// Called once with the lock, when it is taken (or with why waiting failed).
pub(crate) type OnTaken = Box<dyn FnOnce(Result<RunLock, EngineError>) + Send>;

struct Waiter {
    run_id: RunId,
    candidate: LockCandidate,
    on_taken: OnTaken,
    /// A round of tries after a close is under way.
    retrying: bool,
    /// How many events have asked it to try: a round that ends while one came in during it
    /// goes on, so that a release just after its last try is not missed.
    kicks: u64,
}

type Waiters = Arc<Mutex<HashMap<OsString, Waiter>>>;

/// Followers of files, by name: on any event each has its file marked changed, then is woken (a
/// permit kept if it is not waiting).
type FollowerMap = Mutex<HashMap<OsString, Vec<Follower>>>;

struct Follower {
    id: u64,
    changed: Arc<AtomicBool>,
    wake: Arc<Notify>,
}
type Followers = Arc<FollowerMap>;

pub(crate) struct LocksDirWatch {
    /// `None` once stopped, or when no watch could be had (then nobody is waited for).
    watcher: Mutex<Option<RecommendedWatcher>>,
    waiters: Waiters,
    followers: Followers,
    next_follower: AtomicU64,
    exec: Handle,
}

/// A follower's interest in a file; dropping it ends the interest.
pub(crate) struct Following {
    followers: Weak<FollowerMap>,
    name: OsString,
    id: u64,
    changed: Arc<AtomicBool>,
    /// There is no watch to say when the file changes: it may have, at any time.
    unwatched: bool,
}

impl Following {
    /// Whether the file may have changed since the last call (`true` the first time), so that
    /// a feed following many files reads only those that did.
    pub(crate) fn take_changed(&self) -> bool {
        self.changed.swap(false, Ordering::AcqRel) || self.unwatched
    }
}

impl Drop for Following {
    fn drop(&mut self) {
        let Some(followers) = self.followers.upgrade() else {
            return;
        };
        let mut all = followers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(list) = all.get_mut(&self.name) {
            list.retain(|follower| follower.id != self.id);
            if list.is_empty() {
                all.remove(&self.name);
            }
        }
    }
}

impl LocksDirWatch {
    pub(crate) fn start(lock_dir: &Path, exec: Handle) -> LocksDirWatch {
        // Watched before any lock is taken there (a follower may come first).
        let _ = crate::lock::prepare_dir(lock_dir);
        let waiters: Waiters = Arc::default();
        let followers: Followers = Arc::default();
        let seen = Arc::clone(&waiters);
        let followed = Arc::clone(&followers);
        let retry_on = exec.clone();
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            match event {
                Ok(event) if !event.need_rescan() => {
                    for path in &event.paths {
                        let Some(name) = path.file_name() else {
                            continue;
                        };
                        wake_followers(&followed, Some(name));
                        if lets_go(&event.kind) {
                            try_waiter(&seen, name, &retry_on);
                        }
                    }
                }
                // Events may have been lost (the queue overflowed): everyone looks.
                _ => {
                    wake_followers(&followed, None);
                    let names: Vec<OsString> = lock(&seen).keys().cloned().collect();
                    for name in names {
                        try_waiter(&seen, &name, &retry_on);
                    }
                }
            }
        })
        .and_then(|mut watcher| {
            watcher.watch(lock_dir, RecursiveMode::NonRecursive)?;
            Ok(watcher)
        });
        let watcher = match watcher {
            Ok(watcher) => Some(watcher),
            Err(error) => {
                tracing::error!(%error, dir = %lock_dir.display(), "cannot watch run locks; runs held by other processes are not taken over when they let go");
                None
            }
        };
        LocksDirWatch {
            watcher: Mutex::new(watcher),
            waiters,
            followers,
            next_follower: AtomicU64::new(1),
            exec,
        }
    }

    /// Wakes `wake` whenever the file `name` in the locks directory is created, written,
    /// closed or removed, until the returned interest is dropped.
    pub(crate) fn follow(&self, name: &std::ffi::OsStr, wake: Arc<Notify>) -> Following {
        let id = self.next_follower.fetch_add(1, Ordering::Relaxed);
        let changed = Arc::new(AtomicBool::new(true));
        self.followers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(name.to_os_string())
            .or_default()
            .push(Follower {
                id,
                changed: Arc::clone(&changed),
                wake,
            });
        Following {
            followers: Arc::downgrade(&self.followers),
            name: name.to_os_string(),
            id,
            changed,
            unwatched: self
                .watcher
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_none(),
        }
    }

    /// Waits for the lock of a run: `on_taken` is called once with it, the moment the
    /// process holding it lets go or dies (at once if nobody holds it now). One waiter per run;
    /// `false` if there is one already.
    pub(crate) fn wait_for(
        &self,
        candidate: LockCandidate,
        run_id: &RunId,
        on_taken: OnTaken,
    ) -> bool {
        let Some(name) = candidate.file_name().map(OsString::from) else {
            return false;
        };
        {
            let mut waiters = lock(&self.waiters);
            if waiters.contains_key(&name) {
                return false;
            }
            waiters.insert(
                name.clone(),
                Waiter {
                    run_id: run_id.clone(),
                    candidate,
                    on_taken,
                    retrying: false,
                    kicks: 0,
                },
            );
        }
        let watching = self
            .watcher
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some();
        if !watching {
            // No watch could be had (the directory, inotify's limits): the lock is tried now
            // and then, which is slower, but the run is still taken over.
            let waiters = Arc::clone(&self.waiters);
            let name = name.clone();
            self.exec.spawn(async move {
                while try_once(&waiters, &name) {
                    tokio::time::sleep(UNWATCHED_TRIES).await;
                }
            });
            return true;
        }
        // The holder may have let go before the waiter was in place.
        try_waiter(&self.waiters, &name, &self.exec);
        true
    }

    /// Stops: nobody is waited for any more (followers are woken a last time), and the
    /// watch's thread ends.
    pub(crate) fn stop(&self) {
        lock(&self.waiters).clear();
        wake_followers(&self.followers, None);
        drop(
            self.watcher
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
        );
    }
}

/// A lock file closed after writing (its holder let go, or died) or removed.
fn lets_go(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::Access(AccessKind::Close(AccessMode::Write)) | EventKind::Remove(_)
    )
}

/// Wakes the followers of `name` (`None`: everyone).
fn wake_followers(followers: &Followers, name: Option<&std::ffi::OsStr>) {
    let all = followers.lock().unwrap_or_else(|p| p.into_inner());
    let woken: Vec<&Follower> = match name {
        Some(name) => all.get(name).into_iter().flatten().collect(),
        None => all.values().flatten().collect(),
    };
    for follower in woken {
        // Marked before the wake, so that the woken feed reads it.
        follower.changed.store(true, Ordering::Release);
        follower.wake.notify_one();
    }
}

fn lock(waiters: &Waiters) -> std::sync::MutexGuard<'_, HashMap<OsString, Waiter>> {
    waiters.lock().unwrap_or_else(|p| p.into_inner())
}

/// Tries the lock of the waiter for `name`, if there is one; when it is still held, tries again
/// a few times shortly after (the close that woke it comes just before the release).
fn try_waiter(waiters: &Waiters, name: &std::ffi::OsStr, exec: &Handle) {
    {
        let mut all = lock(waiters);
        let Some(waiter) = all.get_mut(name) else {
            return;
        };
        waiter.kicks += 1;
    }
    if !try_once(waiters, name) {
        return;
    }
    let mut seen = {
        let mut all = lock(waiters);
        let Some(waiter) = all.get_mut(name) else {
            return;
        };
        if waiter.retrying {
            return;
        }
        waiter.retrying = true;
        waiter.kicks
    };
    let waiters = Arc::clone(waiters);
    let name = name.to_os_string();
    exec.spawn(async move {
        loop {
            for pause in RETRIES_AFTER_CLOSE {
                tokio::time::sleep(pause).await;
                if !try_once(&waiters, &name) {
                    return;
                }
            }
            let mut all = lock(&waiters);
            let Some(waiter) = all.get_mut(&name) else {
                return;
            };
            if waiter.kicks == seen {
                waiter.retrying = false;
                return;
            }
            // Asked again during the round: another round.
            seen = waiter.kicks;
        }
    });
}

/// One try; `true` while the waiter is still waiting.
fn try_once(waiters: &Waiters, name: &std::ffi::OsStr) -> bool {
    let mut all = lock(waiters);
    let Some(waiter) = all.get_mut(name) else {
        return false;
    };
    let taken = match waiter.candidate.try_take() {
        Ok(None) => return true,
        Ok(Some(lock)) => Ok(lock),
        Err(error) => Err(error),
    };
    if let Some(waiter) = all.remove(name) {
        drop(all);
        tracing::debug!(run_id = %waiter.run_id, "the lock of a run held elsewhere is free");
        (waiter.on_taken)(taken);
    }
    false
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_follower_is_told_which_file_changed() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let watch = LocksDirWatch::start(dir.path(), runtime.handle().clone());
        let wake = Arc::new(Notify::new());
        let mine = watch.follow("mine.progress".as_ref(), Arc::clone(&wake));
        let other_wake = Arc::new(Notify::new());
        let other = watch.follow("other.progress".as_ref(), Arc::clone(&other_wake));
        assert!(mine.take_changed(), "read once at first");
        assert!(!mine.take_changed());
        assert!(other.take_changed());

        std::fs::write(dir.path().join("mine.progress"), "hello").unwrap();
        runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(10), wake.notified())
                .await
                .expect("woken");
        });
        assert!(mine.take_changed());
        assert!(!other.take_changed(), "another file did not change");
        watch.stop();
    }
}
