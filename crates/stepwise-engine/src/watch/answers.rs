//! What a watcher does when a trigger is due: a schedule's slot passed (record it, keyed by
//! the slot, then start its run), or files changed (leave out the workspace's runs' own
//! changes, claim the rest in one firing, then start its run). Nothing is forgotten before it
//! is recorded: a slot or a change that could not be recorded is looked at again.

use std::time::Instant;

use serde_json::json;
use stepwise_core::cause::{CauseKind, files_signal_name, files_summary, schedule_signal_name};
use stepwise_store::NewSignal;

use super::files::{Change, FilesWatch};
use super::fire::Target;
use super::own_changes;
use super::schedule;
use super::space::Watched;
use super::watcher::Loop;

impl Loop {
    pub(super) async fn look_at_schedule(&mut self, watched: &mut Watched) {
        let now_ms = self.schedule_now_ms();
        let name = schedule_signal_name(&watched.target.path_text());
        if !watched.schedule_begun {
            let latest = {
                let name = name.clone();
                (self.engine.ctx.db)
                    .read(move |store| Ok(store.latest_signal(&name)?))
                    .await
            };
            let recorded = match latest {
                Ok(latest) => latest.and_then(|signal| signal.payload["slot_ms"].as_i64()),
                Err(error) => return self.problem(error.to_string()),
            };
            if let Some(schedule) = &mut watched.schedule {
                schedule.begin(now_ms, recorded);
                watched.schedule_begun = true;
            }
        }
        let Some(schedule) = &mut watched.schedule else {
            return;
        };
        let Some(slot) = schedule.due(now_ms) else {
            return;
        };
        if schedule.skip(slot) {
            schedule.answered(slot);
            return;
        }
        let mut summary = format!("schedule {}", schedule::shown(slot.at_ms, now_ms));
        if slot.catch_up {
            summary.push_str(" (catch-up)");
        }
        let new = NewSignal {
            name,
            payload: json!({
                "slot": schedule::rfc3339(slot.at_ms),
                "slot_ms": slot.at_ms,
                "cron": schedule.trigger.cron,
                "catch_up": slot.catch_up,
                "summary": summary,
            }),
            idempotency_key: slot.at_ms.to_string(),
            correlation_id: None,
            source: self.source(),
            created_at_ms: now_ms,
        };
        let recorded = (self.engine.ctx.db)
            .write(move |store| store.record_signal(&new))
            .await;
        match recorded {
            Ok((signal, _)) => {
                schedule.answered(slot);
                self.start(&watched.target, CauseKind::Schedule, &signal)
                    .await;
            }
            // The slot stays due: tried again at the next look.
            Err(error) => self.problem(error.to_string()),
        }
    }

    pub(super) async fn look_at_files(&mut self, watched: &mut Watched) {
        let Some(mut files) = watched.files.take() else {
            return;
        };
        let settled = (self.engine.ctx.exec)
            .spawn_blocking(move || {
                let changes = files.settle();
                (files, changes)
            })
            .await;
        let Ok((mut files, mut changes)) = settled else {
            return self.problem("looking at changed files stopped".to_string());
        };
        tracing::debug!(?changes, workflow = %watched.target.path.display(), "files changed");
        if self
            .answer_files(&watched.target, &files, &mut changes)
            .await
        {
            files.answered();
        } else {
            files.put_off(Instant::now());
        }
        watched.files = Some(files);
    }

    /// Fires for `changes` but the workspace's runs' own: `false` when they must wait (a run
    /// there is still changing files, or the firing could not be recorded).
    async fn answer_files(
        &mut self,
        target: &Target,
        files: &FilesWatch,
        changes: &mut Vec<Change>,
    ) -> bool {
        if changes.is_empty() {
            return true;
        }
        if !files.trigger.include_own {
            let workspace = target.workspace.display().to_string();
            let since = files
                .first_seen_ms
                .unwrap_or_else(|| self.engine.ctx.clock.now_ms());
            let holds = self.engine.ctx.db.holds.clone();
            let own = (self.engine.ctx.db)
                .read(move |store| own_changes::read(store, &holds, &workspace, since))
                .await;
            match own {
                Ok(own) if own.busy => return false,
                Ok(own) => changes.retain(|change| !own.made(&change.path, &change.now)),
                Err(error) => {
                    self.problem(error.to_string());
                    return false;
                }
            }
            if changes.is_empty() {
                return true;
            }
        }
        let keys: Vec<String> = changes.iter().map(|c| c.key.clone()).collect();
        let claimed: Vec<Change> = changes.clone();
        let (name, source) = (files_signal_name(&target.path_text()), self.source());
        let now_ms = self.engine.ctx.clock.now_ms();
        let path = target.path_text();
        let recorded = (self.engine.ctx.db)
            .write(move |store| {
                store.record_file_firing(&path, &keys, |chosen| {
                    firing(name, source, now_ms, chosen.iter().map(|&i| &claimed[i]))
                })
            })
            .await;
        match recorded {
            Ok(Some(signal)) => {
                self.start(target, CauseKind::Files, &signal).await;
                true
            }
            // Another watcher's firing claimed them all.
            Ok(None) => true,
            Err(error) => {
                self.problem(error.to_string());
                false
            }
        }
    }
}

/// The signal of a file firing: the changes it claims, and a key of them.
fn firing<'a>(
    name: String,
    source: String,
    now_ms: i64,
    changes: impl Iterator<Item = &'a Change>,
) -> NewSignal {
    let changes: Vec<&Change> = changes.collect();
    let listed: Vec<(String, _)> = changes.iter().map(|c| (c.path.clone(), c.event)).collect();
    let summary = files_summary(&listed);
    let mut key = stepwise_core::hash::ContentHasher::default();
    for change in &changes {
        key.update(change.key.as_bytes());
        key.update(b"\n");
    }
    NewSignal {
        name,
        payload: json!({
            "changes": changes.iter().map(|c| json!({"path": c.path, "event": c.event})).collect::<Vec<_>>(),
            "summary": summary,
        }),
        idempotency_key: key.finish(),
        correlation_id: None,
        source,
        created_at_ms: now_ms,
    }
}
