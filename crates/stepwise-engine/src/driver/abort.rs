//! A driver that cannot go on: where the failure is the run's own, it ends the run as failed
//! with `RunAborted`, whose message says why in the engine's words, so that `show` and the
//! window tell it. Where it is the engine's or the database's as a whole (shutting down, the
//! file replaced, another process writing the run, a database this user may not write), the
//! run is left as it is for the next holder; the failure is logged and told all the same (see
//! `failures`).

use std::sync::Arc;

use stepwise_core::event::Event;
use stepwise_core::ids::RunId;
use stepwise_store::StoreError;

use crate::context::Context;
use crate::error::{DatabaseError, EngineError};
use crate::record::new_event;

/// Whether a driver's failure ends its run (as opposed to leaving it for the next holder):
/// not when the engine stops, the database file was replaced or may not be written, another
/// process wrote the run, the database was busy (another process held its write lock longer
/// than the wait allows), or the workspace cannot be opened (moved, unmounted): the run can go
/// on once that has passed.
pub(super) fn ends_the_run(error: &EngineError) -> bool {
    match error {
        EngineError::ShutDown
        | EngineError::WriterStopped
        | EngineError::RunLocked { .. }
        | EngineError::HoldLost { .. }
        | EngineError::DrivenElsewhere { .. }
        | EngineError::ServerGone { .. }
        | EngineError::Workspace(_) => false,
        EngineError::Database(DatabaseError(
            StoreError::Replaced { .. } | StoreError::ReadOnly { .. } | StoreError::Conflict { .. },
        )) => false,
        EngineError::Database(error) => !error.is_busy(),
        _ => true,
    }
}

/// Records `RunAborted` for `error` in the run, if the failure ends the run and the run has not
/// ended already. The run is read back first: a failed commit may have left what the driver
/// held in memory ahead of the log. Only while holding the run's lock, on the writer's thread.
/// Returns whether the run ended so.
pub(super) async fn record_abort(ctx: &Arc<Context>, run_id: &RunId, error: &EngineError) -> bool {
    if !ends_the_run(error) {
        return false;
    }
    let recorded = async {
        let mut state = ctx.load_run(run_id.as_str()).await?.state;
        if state.status().is_finished() {
            return Ok(false);
        }
        let event = Event::RunAborted {
            message: error.to_string(),
        };
        let expected = state.last_seq();
        state
            .apply(expected.next(), &event)
            .map_err(|source| EngineError::State {
                run_id: run_id.clone(),
                source,
            })?;
        let row = new_event(&event, None, ctx.clock.now_ms())?;
        let status = state.status().as_str();
        ctx.db.writer.write_here(|store| {
            store.append_commands(run_id, expected, &[row], Some(status), &[])
        })?;
        Ok::<bool, EngineError>(true)
    };
    match recorded.await {
        Ok(ended) => ended,
        Err(failure) => {
            tracing::error!(%run_id, error = %failure, "cannot record why the run stopped");
            false
        }
    }
}
