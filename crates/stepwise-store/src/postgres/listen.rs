//! Hearing of every commit, from any process on any machine: each write transaction notifies
//! [`CHANGES_CHANNEL`] (delivered at its commit), and a [`PgListener`] waits for those
//! notifications on a connection of its own, without polling.

use std::time::Duration;

use postgres::Client;
use postgres::fallible_iterator::FallibleIterator;

use super::{CHANGES_CHANNEL, PgTarget};
use crate::{Durability, StoreError};

/// Most notifications taken in one wait (the rest come with the next): they all mean the
/// same, "something was committed".
const MOST_AT_ONCE: usize = 1024;

/// A connection listening for commits.
pub struct PgListener {
    client: Client,
    label: String,
}

impl std::fmt::Debug for PgListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgListener")
            .field("database", &self.label)
            .finish_non_exhaustive()
    }
}

impl PgTarget {
    /// A new connection listening for every commit to the database.
    pub fn listen(&self) -> Result<PgListener, StoreError> {
        let mut client = self.connect(Durability::Normal)?;
        client
            .batch_execute(&format!("LISTEN {CHANGES_CHANNEL}"))
            .map_err(|error| StoreError::from(error).at(std::path::Path::new(self.label())))?;
        Ok(PgListener {
            client,
            label: self.label().to_owned(),
        })
    }
}

impl PgListener {
    /// Waits up to `timeout` for commits; the server processes of the connections that made
    /// the commits heard of (empty when none came). Fails when the connection is lost: listen
    /// again, and read what changed meanwhile by sequence.
    pub fn wait(&mut self, timeout: Duration) -> Result<Vec<u32>, StoreError> {
        let label = self.label.clone();
        let at =
            move |error: postgres::Error| StoreError::from(error).at(std::path::Path::new(&label));
        let mut senders = Vec::new();
        {
            let mut notifications = self.client.notifications();
            // The first waits; those already queued behind it are taken at once.
            let first = notifications.timeout_iter(timeout).next().map_err(&at)?;
            if let Some(first) = first {
                senders.push(first.process_id().unsigned_abs());
                let mut queued = notifications.iter();
                while senders.len() < MOST_AT_ONCE {
                    match queued.next().map_err(&at)? {
                        Some(next) => senders.push(next.process_id().unsigned_abs()),
                        None => break,
                    }
                }
            }
        }
        if self.client.is_closed() {
            return Err(StoreError::Postgres {
                database: Some(self.label.clone()),
                reason: "the connection to the server was lost".to_owned(),
                retryable: true,
                gone: true,
            });
        }
        Ok(senders)
    }
}
