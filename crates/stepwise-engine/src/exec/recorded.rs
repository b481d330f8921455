//! Whether an operation's request is recorded yet. An operation starts only once its
//! `OperationStarted` is durable; an executor that prepares early (a command: its request
//! encoded, its pipes made, while the commit is written; a model call: its request written for
//! the wire) waits for this before anything another process can see, or hands the committing thread what starts it
//! ([`Recorded::then`]), so that it starts the moment the commit is durable, with no thread to
//! wake in between.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

/// What runs once a commit is durable.
type Starter = Box<dyn FnOnce() + Send>;

enum State {
    /// Being written; these run once it is durable (or are dropped if it fails).
    Pending(Vec<Starter>),
    Durable,
    Failed,
}

/// Says whether the commit holding an operation's request is durable.
#[derive(Clone)]
pub(crate) struct Recorded(Arc<Mutex<State>>);

/// The committing side of [`Recorded`], for the operations of one commit: [`Commit::done`]
/// once it is durable; dropped without that if it failed.
pub(crate) struct Commit(Arc<Mutex<State>>);

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Commit {
    pub(crate) fn new() -> (Commit, Recorded) {
        let state = Arc::new(Mutex::new(State::Pending(Vec::new())));
        (Commit(state.clone()), Recorded(state))
    }

    /// The commit is durable: what waits on it runs now, on this thread.
    pub(crate) fn done(self) {
        let waiting = std::mem::replace(&mut *lock(&self.0), State::Durable);
        if let State::Pending(starters) = waiting {
            for start in starters {
                start();
            }
        }
    }
}

impl Drop for Commit {
    fn drop(&mut self) {
        let mut state = lock(&self.0);
        if matches!(*state, State::Pending(_)) {
            // Failed: nothing waiting on it starts (their answers are dropped with them).
            *state = State::Failed;
        }
    }
}

impl Recorded {
    /// For an operation dispatched after its request was recorded.
    pub(crate) fn already() -> Recorded {
        Recorded(Arc::new(Mutex::new(State::Durable)))
    }

    /// Runs `start` the moment the commit is durable and returns what it returned: on the
    /// committing thread if the commit is still being written (so `start` must never block),
    /// here if it is durable already. `None` if the commit failed: nothing is started.
    pub(crate) async fn then<T: Send + 'static>(
        self,
        start: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let mut start = Some(start);
        let answer = {
            let mut state = lock(&self.0);
            match &mut *state {
                State::Durable => None,
                State::Failed => return None,
                State::Pending(starters) => {
                    let (tx, rx) = oneshot::channel();
                    let start = start.take();
                    starters.push(Box::new(move || {
                        if let Some(start) = start {
                            let _ = tx.send(start());
                        }
                    }));
                    Some(rx)
                }
            }
        };
        match answer {
            Some(rx) => rx.await.ok(),
            // Durable already: `start` was not handed over.
            None => start.map(|start| start()),
        }
    }

    /// Waits until the request is durable (`true`), or its commit failed (`false`): the
    /// operation must then not start.
    pub(crate) async fn wait(self) -> bool {
        self.then(|| ()).await.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn what_waits_runs_once_the_commit_is_durable_and_never_if_it_failed() {
        assert!(Recorded::already().wait().await);
        let (commit, recorded) = Commit::new();
        let early = recorded.clone().then(|| std::thread::current().id());
        tokio::pin!(early);
        // Polled once: it waits, its starter handed over.
        let waited = tokio::time::timeout(std::time::Duration::ZERO, &mut early).await;
        assert!(waited.is_err(), "it ran before the commit was durable");
        let committer = std::thread::spawn(move || commit.done());
        let committer_id = committer.thread().id();
        committer.join().unwrap_or_default();
        assert_eq!(
            early.await,
            Some(committer_id),
            "run by the committing thread"
        );
        assert!(
            recorded.wait().await,
            "ready once done, for a late waiter too"
        );

        let (failed, recorded) = Commit::new();
        let waiting = recorded.clone().then(|| ());
        tokio::pin!(waiting);
        let waited = tokio::time::timeout(std::time::Duration::ZERO, &mut waiting).await;
        assert!(waited.is_err());
        drop(failed);
        assert_eq!(waiting.await, None, "a failed commit starts nothing");
        assert!(!recorded.wait().await);
    }
}
