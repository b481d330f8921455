//! Which machine a run belongs to: the one it was started on (`RunStarted::host`), where its
//! workspace is. Only a process there drives it (see `driver::drive`); a process elsewhere
//! reads it whole from the log and sends it commands through its inbox, which a process on its
//! machine applies. So whoever waits on a run of another machine waits for a process there,
//! and is told at once when none holds it, rather than taking the run over.

use stepwise_core::event::Event;
use stepwise_core::ids::{EventSeq, RunId};

use crate::context::Context;
use crate::error::EngineError;

impl Context {
    /// The machine `run_id` belongs to when that is not this one; `None` for a run of this
    /// machine (or one recorded before machines were). Read once per run, from its first event.
    pub(crate) async fn other_machine(
        &self,
        run_id: &RunId,
    ) -> Result<Option<String>, EngineError> {
        if let Some(known) = self.machines().get(run_id) {
            return Ok(known.clone());
        }
        let run = run_id.clone();
        let host = self
            .db
            .read(move |store| {
                let first = store.load_events_page(&run, EventSeq::ZERO, 1)?;
                Ok(match first.first() {
                    Some(stored) => match crate::record::decode(&run, stored)? {
                        Event::RunStarted(started) => started.host,
                        _ => None,
                    },
                    None => None,
                })
            })
            .await?;
        let other = host.filter(|host| *host != self.config.host);
        self.note_machine(run_id, other.clone());
        Ok(other)
    }

    /// Records the machine a run belongs to when another than this one (`None`: this one).
    pub(crate) fn note_machine(&self, run_id: &RunId, other: Option<String>) {
        self.machines().insert(run_id.clone(), other);
    }

    /// For a run of another machine: `Ok(true)` while a process there holds it (what is sent
    /// to it is applied there, so whoever waits on it waits for that process), the refusal
    /// when none does. `Ok(false)` for a run of this machine.
    pub(crate) async fn held_on_its_machine(&self, run_id: &RunId) -> Result<bool, EngineError> {
        let Some(host) = self.other_machine(run_id).await? else {
            return Ok(false);
        };
        let holds = self.db.holds.clone();
        let run = run_id.clone();
        let holder = self.db.read(move |store| holds.holder(store, &run)).await?;
        match holder {
            Some(_) => Ok(true),
            None => Err(EngineError::DrivenElsewhere {
                run_id: run_id.clone(),
                host,
                here: self.config.host.clone(),
            }),
        }
    }

    /// Refuses what only a process on a run's machine may do to it (drive it, rewind its
    /// workspace, fork it from there): its workspace is there, and a folder of the same name
    /// here is not it.
    pub(crate) async fn refuse_other_machine(&self, run_id: &RunId) -> Result<(), EngineError> {
        match self.other_machine(run_id).await? {
            None => Ok(()),
            Some(host) => Err(EngineError::DrivenElsewhere {
                run_id: run_id.clone(),
                host,
                here: self.config.host.clone(),
            }),
        }
    }

    fn machines(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<RunId, Option<String>>> {
        self.machines.lock().unwrap_or_else(|p| p.into_inner())
    }
}
