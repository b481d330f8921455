//! Riding out a database server that went away (restarted, or out of reach for a while): the
//! driver keeps what it has under way (commands go on running, their results wait in its
//! queue), waits for the server, takes the run's hold again and goes on, once it has checked
//! that the log ends where it left it. A commit whose answer was lost with the connection is
//! found in the log, or written again. If another process took the run meanwhile, or the
//! server stays away longer than [`OUTAGE_PATIENCE`], the driver stops as it would have
//! without this: the next holder recovers the run from the log.
//!
//! Only for a shared database (PostgreSQL): a SQLite file does not go away and come back.

use std::time::{Duration, Instant};

use stepwise_core::ids::EventSeq;
use stepwise_store::NewEvent;

use super::Driver;
use crate::db::OUTAGE_PATIENCE;
use crate::error::EngineError;

/// How often it asks whether the server is back.
const RETRY_EVERY: Duration = Duration::from_millis(250);

/// What the driver was doing when the server went away.
pub(super) enum Pending<'a> {
    /// Nothing unwritten: the log should end at `logged`.
    Nothing { logged: EventSeq },
    /// Appending `rows` after `expected`: the answer was lost.
    Commit {
        expected: EventSeq,
        rows: &'a [NewEvent],
    },
}

/// Where the log was found once the server answered again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Found {
    /// As the driver left it (a commit under way had not landed, or there was none).
    AsLeft,
    /// With the commit under way in it.
    Landed,
}

impl Driver {
    /// Whether `error` is the shared database's server gone away, which the driver waits out,
    /// rather than a failure to stop on.
    pub(super) fn is_outage(&self, error: &EngineError) -> bool {
        self.ctx.db.holds.is_shared()
            && match error {
                EngineError::HoldLost { .. } => true,
                EngineError::Database(error) => error.is_server_gone(),
                _ => false,
            }
    }

    /// Waits until the server answers, the run is held again and its log checked; blocks the
    /// writer thread meanwhile (nothing could be written anyway). `began`: when the outage
    /// was first met (a commit tried again counts from its first failure). Gives up, with
    /// [`EngineError::ServerGone`] (which no caller waits out again), once the server has not
    /// answered for [`OUTAGE_PATIENCE`], or when the engine shuts down.
    pub(super) fn ride_out(
        &mut self,
        pending: &Pending<'_>,
        began: Instant,
    ) -> Result<Found, EngineError> {
        tracing::warn!(
            run_id = %self.run_id,
            "the database server does not answer; the run waits for it (up to {} minutes) while its operations go on",
            OUTAGE_PATIENCE.as_secs() / 60
        );
        loop {
            std::thread::sleep(RETRY_EVERY);
            if self.ctx.is_shutting_down() {
                return Err(EngineError::ShutDown);
            }
            match self.resume_after_outage(pending) {
                Ok(found) => {
                    tracing::warn!(run_id = %self.run_id, waited_ms = began.elapsed().as_millis() as u64, "the database server answers again; the run goes on");
                    return Ok(found);
                }
                Err(error) if self.is_outage(&error) && began.elapsed() < OUTAGE_PATIENCE => {}
                Err(error) if self.is_outage(&error) => {
                    return Err(EngineError::ServerGone {
                        run_id: self.run_id.clone(),
                        minutes: OUTAGE_PATIENCE.as_secs() / 60,
                        last: error.to_string(),
                    });
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// One try: the hold taken again (unless it was never lost), and the log's end compared
    /// with what the driver knows.
    fn resume_after_outage(&mut self, pending: &Pending<'_>) -> Result<Found, EngineError> {
        let lost = self.lock.as_ref().is_none_or(crate::lock::RunLock::is_lost);
        if lost {
            let now = self.ctx.clock.now_ms();
            match self.ctx.db.holds.try_acquire(&self.run_id, now)? {
                Ok(lock) => self.lock = Some(lock),
                // Another process took the run while the server was away.
                Err(holder) => {
                    return Err(EngineError::RunLocked {
                        run_id: self.run_id.clone(),
                        holder,
                    });
                }
            }
        }
        let run_id = self.run_id.clone();
        let last = self
            .ctx
            .db
            .writer
            .write_here(|store| store.run(&run_id))?
            .map(|row| row.last_seq);
        // Not an outage: the driver stops, recording nothing, and never waits on it again.
        let written_by_another = || EngineError::RunLocked {
            run_id: self.run_id.clone(),
            holder: "another process, which wrote to its log while the database server was away"
                .to_owned(),
        };
        match *pending {
            Pending::Nothing { logged } if last == Some(logged) => Ok(Found::AsLeft),
            Pending::Nothing { .. } => Err(written_by_another()),
            Pending::Commit { expected, .. } if last == Some(expected) => Ok(Found::AsLeft),
            Pending::Commit { expected, rows } => {
                let seqs: Vec<EventSeq> = (1..=rows.len() as u64)
                    .map(|n| EventSeq::new(expected.get() + n))
                    .collect();
                if last != seqs.last().copied() {
                    return Err(written_by_another());
                }
                let stored = self
                    .ctx
                    .db
                    .writer
                    .write_here(|store| store.load_events_at(&run_id, &seqs))?;
                let same = stored.len() == rows.len()
                    && stored.iter().zip(rows).all(|(stored, row)| {
                        stored.event_type == row.event_type
                            && stored.recorded_at_ms == row.recorded_at_ms
                            && stored.payload == row.payload
                    });
                if same {
                    Ok(Found::Landed)
                } else {
                    Err(written_by_another())
                }
            }
        }
    }
}
