//! The executors of the file and command operation kinds, over `file` and `command`.

use std::sync::Arc;

use stepwise_core::operation::{
    OperationError, OperationErrorKind, OperationRequest, OperationResult, ReadOutcome,
};

use super::{AfterCrash, BoxFuture, Executor, OpContext, Outcome, Recovery, WriteRecovery};

/// How long a recovering driver waits for the processes of a command started before a crash
/// to be gone (their supervisor kills them as soon as the engine that started them dies).
const OLD_TREE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(60);

/// Reading a file: no effect on the world, so simply read again after a crash.
pub(crate) struct ReadFile;

impl Executor for ReadFile {
    fn perform(&self, ctx: OpContext, request: OperationRequest) -> BoxFuture<'static, Outcome> {
        Box::pin(async move {
            let OperationRequest::ReadFile { path, missing_ok } = request else {
                return Err(wrong_kind("read_file"));
            };
            blocking(move || super::read_file(&ctx.workspace, &path, missing_ok)).await
        })
    }

    fn after_crash(&self) -> AfterCrash {
        AfterCrash::Repeat
    }
}

/// Listing files: no effect on the world, so simply listed again after a crash.
pub(crate) struct ListFiles;

impl Executor for ListFiles {
    fn perform(&self, ctx: OpContext, request: OperationRequest) -> BoxFuture<'static, Outcome> {
        Box::pin(async move {
            let OperationRequest::ListFiles { path, glob } = request else {
                return Err(wrong_kind("list_files"));
            };
            blocking(move || super::list_files(&ctx.workspace, &path, glob.as_deref())).await
        })
    }

    fn after_crash(&self) -> AfterCrash {
        AfterCrash::Repeat
    }
}

/// Searching files: no effect on the world, so simply searched again after a crash.
pub(crate) struct SearchFiles;

impl Executor for SearchFiles {
    fn perform(&self, ctx: OpContext, request: OperationRequest) -> BoxFuture<'static, Outcome> {
        Box::pin(async move {
            let OperationRequest::SearchFiles {
                pattern,
                path,
                glob,
                excluded,
            } = request
            else {
                return Err(wrong_kind("search"));
            };
            blocking(move || {
                super::search_files(&ctx.workspace, &pattern, &path, glob.as_deref(), &excluded)
            })
            .await
        })
    }

    fn after_crash(&self) -> AfterCrash {
        AfterCrash::Repeat
    }
}

/// Several reads of an agent's turn, side by side, each answered on its own: no effect on the
/// world, so simply performed again after a crash.
pub(crate) struct ReadBatch;

impl Executor for ReadBatch {
    fn perform(&self, ctx: OpContext, request: OperationRequest) -> BoxFuture<'static, Outcome> {
        Box::pin(async move {
            let OperationRequest::ReadBatch { requests } = request else {
                return Err(wrong_kind("read_batch"));
            };
            let reads = requests.into_iter().map(|request| {
                let ws = std::sync::Arc::clone(&ctx.workspace);
                blocking(move || match request {
                    OperationRequest::ReadFile { path, missing_ok } => {
                        super::read_file(&ws, &path, missing_ok)
                    }
                    OperationRequest::ListFiles { path, glob } => {
                        super::list_files(&ws, &path, glob.as_deref())
                    }
                    OperationRequest::SearchFiles {
                        pattern,
                        path,
                        glob,
                        excluded,
                    } => super::search_files(&ws, &pattern, &path, glob.as_deref(), &excluded),
                    _ => Err(wrong_kind("a read")),
                })
            });
            let outcomes = futures_util::future::join_all(reads)
                .await
                .into_iter()
                .map(|outcome| match outcome {
                    Ok(result) => ReadOutcome::Succeeded {
                        result: Box::new(result),
                    },
                    Err(error) => ReadOutcome::Failed { error },
                })
                .collect();
            Ok(OperationResult::ReadsDone { outcomes })
        })
    }

    fn after_crash(&self) -> AfterCrash {
        AfterCrash::Repeat
    }
}

/// Writing a file: compare-and-swap on the file's hash, so after a crash the file itself says
/// whether the write happened.
pub(crate) struct WriteFile;

impl Executor for WriteFile {
    fn perform(&self, ctx: OpContext, request: OperationRequest) -> BoxFuture<'static, Outcome> {
        Box::pin(async move {
            let OperationRequest::WriteFile {
                path,
                base_hash,
                content,
                content_hash,
            } = request
            else {
                return Err(wrong_kind("write_file"));
            };
            let workspace = Arc::clone(&ctx.workspace);
            let write = blocking(move || {
                super::write_file(
                    &workspace,
                    &path,
                    base_hash.as_deref(),
                    &content,
                    &content_hash,
                )
            });
            crate::checkpoint::around(ctx.checkpoint.as_ref(), "the edit", write).await
        })
    }

    fn after_crash(&self) -> AfterCrash {
        AfterCrash::Check
    }

    fn recover(&self, ctx: OpContext, request: OperationRequest) -> BoxFuture<'static, Recovery> {
        Box::pin(async move {
            let OperationRequest::WriteFile {
                path,
                base_hash,
                content_hash,
                ..
            } = request
            else {
                return Recovery::Answered(Err(wrong_kind("write_file")));
            };
            let checked = tokio::task::spawn_blocking(move || {
                super::recover_write(&ctx.workspace, &path, base_hash.as_deref(), &content_hash)
            })
            .await;
            match checked {
                Ok(WriteRecovery::NotApplied) => Recovery::Repeat,
                Ok(WriteRecovery::AlreadyApplied(result)) => Recovery::Answered(Ok(result)),
                Ok(WriteRecovery::Conflict(error)) => Recovery::Answered(Err(error)),
                Err(e) => Recovery::Answered(Err(OperationError::new(
                    OperationErrorKind::Io,
                    format!("checking the file after a crash stopped: {e}"),
                ))),
            }
        })
    }
}

/// Running a command: it may or may not have done its work before a crash, so a person
/// decides; never while anything of it may still run.
pub(crate) struct RunCommand;

impl Executor for RunCommand {
    fn perform(&self, ctx: OpContext, request: OperationRequest) -> BoxFuture<'static, Outcome> {
        Box::pin(async move {
            let OperationRequest::RunCommand(request) = request else {
                return Err(wrong_kind("run_command"));
            };
            // Made here (once per run), where a link or a stranger's file in its place is
            // refused; the supervisor only opens it (never through a link).
            let lock = ctx.commands_lock.make().map_err(|error| {
                OperationError::new(
                    OperationErrorKind::Io,
                    format!("the command was not started: {error}"),
                )
            })?;
            // Beside the workspace's policy, one directory per run, one pair of files per
            // attempt (`<step>-<op>.stdout`).
            let save_as = request
                .save_output
                .then(|| format!(".stepwise/output/{}/{}-{}", ctx.run_id, ctx.step, ctx.op));
            // What it prints goes live to followers (`events --follow`, the app) as it comes.
            let live = super::Live::new(crate::progress::progress_path(
                &ctx.lock_dir,
                &ctx.run_id,
                ctx.op,
            ));
            let command = super::run_command_live(
                &ctx.workspace,
                &request,
                ctx.cancel.clone(),
                Some(&lock),
                save_as.as_deref(),
                Some(live.clone()),
                ctx.recorded.clone(),
            );
            let outcome =
                crate::checkpoint::around(ctx.checkpoint.as_ref(), "the command", command).await;
            live.finish().await;
            outcome
        })
    }

    fn prepares_early(&self) -> bool {
        true
    }

    fn after_crash(&self) -> AfterCrash {
        AfterCrash::AskPerson
    }

    fn recover(&self, ctx: OpContext, _request: OperationRequest) -> BoxFuture<'static, Recovery> {
        Box::pin(unknown_once_gone(ctx, "a command"))
    }
}

/// An operation whose processes ran under a supervisor (a command, an MCP server's call), lost
/// in a crash: its outcome is unknown, and a person is asked once nothing of it can still run.
/// Its supervisor holds the run's commands lock until its tree is gone (it kills the tree when
/// the engine that started it dies); so does every other of the run, all started before the
/// crash (nothing of the run starts again before this is settled).
pub(crate) async fn unknown_once_gone(ctx: OpContext, what: &'static str) -> Recovery {
    let lock = ctx.commands_lock.clone();
    let op = ctx.op;
    let gone = tokio::task::spawn_blocking(move || {
        lock.wait_unheld(OLD_TREE_PATIENCE) && lock.wait_unheld_before_shared(op, OLD_TREE_PATIENCE)
    })
    .await
    .unwrap_or(false);
    if !gone {
        tracing::warn!(run_id = %ctx.run_id, op = %ctx.op, "processes of {what} started before a crash are still running; marking its outcome unknown anyway");
    }
    Recovery::Unknown
}

/// Runs blocking file IO on a blocking thread.
async fn blocking(work: impl FnOnce() -> Outcome + Send + 'static) -> Outcome {
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|e| {
        Err(OperationError::new(
            OperationErrorKind::Io,
            format!("the operation's thread stopped: {e}"),
        ))
    })
}

fn wrong_kind(kind: &str) -> OperationError {
    OperationError::new(
        OperationErrorKind::Io,
        format!("internal error: a request that is not {kind} was given to its executor"),
    )
}
