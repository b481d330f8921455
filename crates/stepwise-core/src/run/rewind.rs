//! Rewinding: which files a run changed after a step started, what each held then, and what
//! the run last left in it, read from the run's log (the changes its operations recorded, and
//! those of earlier rewinds). The engine compares these with the disk to propose the rewind.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::checkpoint::{ChangeKind, FileChange, FileVersion};
use crate::event::{Event, FileRestore, RewindApproved, RewindFailure};
use crate::ids::{EventSeq, StepId};

use super::workspace_changes;

/// One file the run changed after the step started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RewindTarget {
    pub path: String,
    /// What it held when the step started (`None`: it did not exist).
    pub then: Option<FileVersion>,
    /// What the run's last change of it left (`None`: it removed it).
    pub left: Option<FileVersion>,
}

/// Where `to` first started in the log, and each file changed from then on whose content the
/// run did not end up leaving as it was, in path order, leaving out the changes the results
/// at the seqs in `keep` record (a fork keeps those of the operations it reuses). A step that
/// never started cannot be rewound to.
pub fn rewind_targets<'a>(
    events: impl IntoIterator<Item = (EventSeq, &'a Event)> + Clone,
    to: &StepId,
    keep: &std::collections::BTreeSet<EventSeq>,
) -> Result<(EventSeq, Vec<RewindTarget>), String> {
    let at = events
        .clone()
        .into_iter()
        .find_map(|(seq, event)| match event {
            Event::StepStarted { step, .. } | Event::StepExpanded { step, .. } if step == to => {
                Some(seq)
            }
            _ => None,
        })
        .ok_or_else(|| {
            format!("step `{to}` never started in this run: there is nothing to rewind to")
        })?;
    let mut changed: Vec<(EventSeq, Vec<FileChange>)> = workspace_changes(events.clone())
        .into_iter()
        .map(|(seq, _, changes)| (seq, changes))
        .collect();
    for (seq, event) in events {
        if let Event::RewindFinished { restored, .. } = event {
            changed.push((seq, restored.clone()));
        }
    }
    changed.sort_by_key(|(seq, _)| *seq);
    let mut files: BTreeMap<String, RewindTarget> = BTreeMap::new();
    let mut saw = |path: &str, before: &Option<FileVersion>, after: &Option<FileVersion>| {
        let target = files
            .entry(path.to_string())
            .or_insert_with(|| RewindTarget {
                path: path.to_string(),
                then: before.clone(),
                left: None,
            });
        target.left = after.clone();
    };
    for (_, changes) in changed
        .iter()
        .filter(|(seq, _)| *seq > at && !keep.contains(seq))
    {
        for change in changes {
            match (change.kind, &change.from) {
                (ChangeKind::Renamed, Some(from)) => {
                    saw(from, &change.before, &None);
                    saw(&change.path, &None, &change.after);
                }
                _ => saw(&change.path, &change.before, &change.after),
            }
        }
    }
    let same = |a: &Option<FileVersion>, b: &Option<FileVersion>| {
        a.as_ref().map(|v| &v.hash) == b.as_ref().map(|v| &v.hash)
    };
    Ok((
        at,
        files
            .into_values()
            .filter(|target| !same(&target.then, &target.left))
            .collect(),
    ))
}

/// A rewind a run's log records.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordedRewind {
    /// The seq of its approval.
    pub seq: EventSeq,
    #[serde(flatten)]
    pub approved: RewindApproved,
    /// What it did: `None` when the log stops before it says (the process died mid-way).
    pub restored: Option<Vec<FileChange>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<RewindFailure>,
}

/// The rewinds of a run, in log order.
pub fn recorded_rewinds<'a>(
    events: impl IntoIterator<Item = (EventSeq, &'a Event)>,
) -> Vec<RecordedRewind> {
    let mut found: Vec<RecordedRewind> = Vec::new();
    for (seq, event) in events {
        match event {
            Event::RewindApproved(approved) => found.push(RecordedRewind {
                seq,
                approved: approved.clone(),
                restored: None,
                failed: Vec::new(),
            }),
            Event::RewindFinished { restored, failed } => {
                if let Some(last) = found.last_mut().filter(|r| r.restored.is_none()) {
                    last.restored = Some(restored.clone());
                    last.failed = failed.clone();
                }
            }
            _ => {}
        }
    }
    found
}

/// The hash that names a rewind proposal: the step, and exactly which files are put back to
/// what, from what, and which are left alone.
pub fn rewind_hash(
    to: &StepId,
    at: EventSeq,
    restores: &[FileRestore],
    left_alone: &[String],
) -> String {
    #[derive(Serialize)]
    struct Named<'a> {
        to: &'a StepId,
        at: EventSeq,
        restores: &'a [FileRestore],
        left_alone: &'a [String],
    }
    crate::hash::json_hash(&Named {
        to,
        at,
        restores,
        left_alone,
    })
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operation::{CommandOutcome, CommandRequest, OperationRequest, OperationResult};

    fn version(hash: &str) -> Option<FileVersion> {
        Some(FileVersion {
            hash: hash.into(),
            size: 1,
            stored: true,
        })
    }

    fn change(path: &str, kind: ChangeKind, before: &str, after: &str) -> FileChange {
        FileChange {
            path: path.into(),
            kind,
            from: None,
            before: (!before.is_empty()).then(|| version(before)).flatten(),
            after: (!after.is_empty()).then(|| version(after)).flatten(),
        }
    }

    /// A log: steps `a` and `b` each run one command making `changes`.
    fn log(a: Vec<FileChange>, b: Vec<FileChange>) -> Vec<(EventSeq, Event)> {
        let mut events = Vec::new();
        let mut seq = 1;
        for (step, changes) in [("a", a), ("b", b)] {
            let started = Event::StepStarted {
                step: step.into(),
                attempt: 1,
            };
            let request = serde_json::from_value::<CommandRequest>(serde_json::json!({
                "command": {"shell": "x"}, "cwd": ".", "timeout_ms": null, "max_output_bytes": 1000
            }))
            .expect("a request");
            let op = Event::OperationStarted {
                step: step.into(),
                attempt: 1,
                request: OperationRequest::RunCommand(request),
            };
            let mut outcome: CommandOutcome =
                serde_json::from_value(serde_json::json!({"exit_code": 0, "signal": null, "stdout": "", "stderr": "", "stdout_bytes": 0, "stderr_bytes": 0, "duration_ms": 1}))
                    .expect("an outcome");
            outcome.changes = changes;
            let done = Event::OperationSucceeded {
                op: EventSeq::new(seq + 1),
                result: OperationResult::CommandFinished(outcome),
            };
            for event in [started, op, done] {
                events.push((EventSeq::new(seq), event));
                seq += 1;
            }
        }
        events
    }

    fn targets(events: &[(EventSeq, Event)], to: &str) -> Vec<RewindTarget> {
        rewind_targets(
            events.iter().map(|(s, e)| (*s, e)),
            &to.into(),
            &Default::default(),
        )
        .expect("targets")
        .1
    }

    #[test]
    fn each_file_goes_back_to_what_it_held_before_the_first_change_after_the_start() {
        let events = log(
            vec![change("x", ChangeKind::Modified, "x0", "x1")],
            vec![
                change("x", ChangeKind::Modified, "x1", "x2"),
                change("new", ChangeKind::Created, "", "n1"),
                change("gone", ChangeKind::Deleted, "g0", ""),
            ],
        );
        let all = targets(&events, "a");
        assert_eq!(all.len(), 3);
        let x = all.iter().find(|t| t.path == "x").expect("x");
        assert_eq!(
            (x.then.clone(), x.left.clone()),
            (version("x0"), version("x2"))
        );
        let from_b = targets(&events, "b");
        let x = from_b.iter().find(|t| t.path == "x").expect("x");
        assert_eq!(x.then, version("x1"));
        let new = from_b.iter().find(|t| t.path == "new").expect("new");
        assert_eq!((new.then.clone(), new.left.clone()), (None, version("n1")));
    }

    #[test]
    fn a_rename_puts_the_old_path_back_and_removes_the_new_and_net_nothing_is_left_out() {
        let mut renamed = change("to", ChangeKind::Renamed, "r0", "r0");
        renamed.from = Some("from".into());
        let events = log(
            vec![change("same", ChangeKind::Modified, "s0", "s1")],
            vec![renamed, change("same", ChangeKind::Modified, "s1", "s0")],
        );
        let all = targets(&events, "a");
        let paths: Vec<&str> = all.iter().map(|t| t.path.as_str()).collect();
        assert_eq!(paths, ["from", "to"], "`same` ends as it began");
        assert_eq!(all[0].then, version("r0"));
        assert_eq!(all[1].then, None);
    }

    #[test]
    fn the_changes_of_results_kept_are_left_as_they_are() {
        let events = log(
            vec![change("x", ChangeKind::Modified, "x0", "x1")],
            vec![change("y", ChangeKind::Modified, "y0", "y1")],
        );
        // The result of `a`'s command (seq 3) is kept: only `b`'s change goes back.
        let kept = std::collections::BTreeSet::from([EventSeq::new(3)]);
        let (_, targets) =
            rewind_targets(events.iter().map(|(s, e)| (*s, e)), &"a".into(), &kept).unwrap();
        let paths: Vec<&str> = targets.iter().map(|t| t.path.as_str()).collect();
        assert_eq!(paths, ["y"]);
    }

    #[test]
    fn a_step_that_never_started_is_refused() {
        let events = log(vec![], vec![]);
        let error = rewind_targets(
            events.iter().map(|(s, e)| (*s, e)),
            &"zz".into(),
            &Default::default(),
        )
        .unwrap_err();
        assert!(error.contains("step `zz` never started"), "{error}");
    }
}
