//! Whether an operation's request is recorded yet. An operation starts only once its
//! `OperationStarted` is durable; an executor that prepares early (a command: its request
//! encoded, its pipes made, while the commit is written) waits for this before anything
//! another process can see.

use tokio::sync::watch;

/// Becomes ready once the commit holding the operation's request is durable, or fails.
#[derive(Clone, Debug)]
pub(crate) struct Recorded(watch::Receiver<bool>);

/// The driver's side of [`Recorded`], for the operations of one commit: [`Commit::done`]
/// once it is durable; dropped without that if it failed.
#[derive(Debug)]
pub(crate) struct Commit(watch::Sender<bool>);

impl Commit {
    pub(crate) fn new() -> (Commit, Recorded) {
        let (tx, rx) = watch::channel(false);
        (Commit(tx), Recorded(rx))
    }

    /// The commit is durable: every operation waiting on it may start.
    pub(crate) fn done(self) {
        let _ = self.0.send(true);
    }
}

impl Recorded {
    /// For an operation dispatched after its request was recorded.
    pub(crate) fn already() -> Recorded {
        Recorded(watch::channel(true).1)
    }

    /// Waits until the request is durable (`true`), or its commit failed (`false`): the
    /// operation must then not start.
    pub(crate) async fn wait(mut self) -> bool {
        self.0.wait_for(|recorded| *recorded).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn it_says_whether_the_commit_was_made() {
        assert!(Recorded::already().wait().await);
        let (commit, recorded) = Commit::new();
        let waiting = tokio::spawn(recorded.clone().wait());
        commit.done();
        assert!(waiting.await.unwrap_or(false));
        assert!(
            recorded.wait().await,
            "ready once done, for a late waiter too"
        );
        let (failed, recorded) = Commit::new();
        drop(failed);
        assert!(
            !recorded.wait().await,
            "a commit that failed starts nothing"
        );
    }
}
