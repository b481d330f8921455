//! Who drives a run, across machines: a session-level advisory lock on the run's id, taken by
//! the connection of the process that drives it. The server releases it when that connection
//! ends (the process exits, is killed, or its machine drops off the network), so a process
//! that can reach the run's workspace takes the run over; two connections never hold it at
//! once.
//!
//! `run_holders` says whose a hold is (`pid 4242 on buildbox`), for the processes that ask; a
//! row counts only while its connection still holds the lock, so a crashed holder's row says
//! nothing.

use super::PgStore;
use crate::StoreError;

/// The advisory lock key of a run: the server's 64-bit hash of its id.
const KEY: &str = "hashtextextended($1, 0)";

impl PgStore {
    /// Takes the hold of `run_id` on this connection if nobody holds it, saying it is
    /// `holder`'s; `Err(who)` when somebody holds it already.
    pub fn try_hold(
        &self,
        run_id: &str,
        holder: &str,
        now_ms: i64,
    ) -> Result<Result<(), String>, StoreError> {
        // The lock and the row on one connection in one call: a connection made anew
        // between the two would carry a row for a lock it does not hold.
        let taken = self.read(|db| {
            let taken: bool = db
                .query_one(&format!("SELECT pg_try_advisory_lock({KEY})"), &[&run_id])?
                .get(0);
            if !taken {
                return Ok(false);
            }
            let said = db.execute(
                "INSERT INTO run_holders (run_id, holder, pid, since_ms)
                 VALUES ($1, $2, pg_backend_pid(), $3)
                 ON CONFLICT (run_id) DO UPDATE SET holder = excluded.holder,
                     pid = excluded.pid, since_ms = excluded.since_ms",
                &[&run_id, &holder, &now_ms],
            );
            if let Err(error) = said {
                // Not left locked for nobody: a lock taken twice on one session stacks.
                let _ = db.query_one(&format!("SELECT pg_advisory_unlock({KEY})"), &[&run_id]);
                return Err(error);
            }
            Ok(true)
        })?;
        if !taken {
            let who = self.holder(run_id)?;
            return Ok(Err(
                who.unwrap_or_else(|| "another stepwise process".to_owned())
            ));
        }
        Ok(Ok(()))
    }

    /// Lets go of the hold of `run_id` this connection took.
    pub fn release_hold(&self, run_id: &str) -> Result<(), StoreError> {
        self.read(|db| {
            db.execute(
                "DELETE FROM run_holders WHERE run_id = $1 AND pid = pg_backend_pid()",
                &[&run_id],
            )?;
            db.query_one(&format!("SELECT pg_advisory_unlock({KEY})"), &[&run_id])?;
            Ok(())
        })
    }

    /// Who holds `run_id` now, as its holder said, or `None` when nobody does. From any
    /// connection.
    pub fn holder(&self, run_id: &str) -> Result<Option<String>, StoreError> {
        self.read(|db| {
            let held = db.query_opt(
                &format!(
                    "SELECT l.pid, h.holder FROM pg_locks l
                     LEFT JOIN run_holders h ON h.run_id = $1 AND h.pid = l.pid
                     WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
                       AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                       AND ((l.classid::bigint << 32) | l.objid::bigint) = {KEY}
                     LIMIT 1"
                ),
                &[&run_id],
            )?;
            Ok(held.map(|row| {
                let pid: i32 = row.get(0);
                row.get::<_, Option<String>>(1)
                    .unwrap_or_else(|| format!("a stepwise process (server pid {pid})"))
            }))
        })
    }

    /// Whether the connection still answers: holds taken on it are only as alive as it is.
    pub fn is_alive(&self) -> bool {
        self.read(|db| Ok(db.query_one("SELECT 1", &[])?.get::<_, i32>(0)))
            .is_ok()
    }
}
