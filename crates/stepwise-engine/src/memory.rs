//! Agent memory: the executors of `remember` and `recall` (an agent step's memory tools) over
//! the database's shared memories, and what the CLI and the app ask of them. A run records what
//! each recall answered, so replay and resume never read the memories again.

use stepwise_core::operation::{
    OperationError, OperationErrorKind, OperationRequest, OperationResult, RecalledEntry,
};
use stepwise_store::{MemoryEntry, MemorySummary, Rememberer, StoreError};

use crate::engine::Engine;
use crate::error::EngineError;
use crate::exec::{AfterCrash, BoxFuture, Executor, OpContext, Outcome};

/// Remembers a text: the same again after a crash leaves the same entry.
pub(crate) struct Remember;

/// Recalls entries: reads only.
pub(crate) struct Recall;

impl Executor for Remember {
    fn perform(&self, ctx: OpContext, request: OperationRequest) -> BoxFuture<'static, Outcome> {
        Box::pin(async move {
            let OperationRequest::Remember { memory, key, text } = request else {
                return Err(failed("remember was asked with another request"));
            };
            let engine = ctx.engine.upgrade().ok_or_else(shutting_down)?;
            let now = engine.clock.now_ms();
            let (run_id, step) = (ctx.run_id.to_string(), ctx.step.to_string());
            let replaced = engine
                .db
                .write(move |store| {
                    let by = Rememberer {
                        run_id: &run_id,
                        step: &step,
                        at_ms: now,
                    };
                    store.remember(&memory, &key, &text, by)
                })
                .await
                .map_err(told)?;
            Ok(OperationResult::Remembered { replaced })
        })
    }

    fn after_crash(&self) -> AfterCrash {
        AfterCrash::Repeat
    }
}

impl Executor for Recall {
    fn perform(&self, ctx: OpContext, request: OperationRequest) -> BoxFuture<'static, Outcome> {
        Box::pin(async move {
            let OperationRequest::Recall { memory, query } = request else {
                return Err(failed("recall was asked with another request"));
            };
            let engine = ctx.engine.upgrade().ok_or_else(shutting_down)?;
            let entries = engine
                .db
                .read(move |store| Ok(store.recall(&memory, &query)?))
                .await
                .map_err(told)?;
            Ok(OperationResult::Recalled {
                entries: entries
                    .into_iter()
                    .map(|e| RecalledEntry {
                        key: e.key,
                        text: e.text,
                    })
                    .collect(),
            })
        })
    }

    fn after_crash(&self) -> AfterCrash {
        AfterCrash::Repeat
    }
}

fn failed(message: &str) -> OperationError {
    OperationError::new(OperationErrorKind::Io, message)
}

fn shutting_down() -> OperationError {
    OperationError::new(OperationErrorKind::Cancelled, "the engine is shutting down")
}

/// The error an agent is told: a full memory in its words; anything else without the
/// database's (which name places on this machine), those logged here.
fn told(error: EngineError) -> OperationError {
    if let EngineError::Database(crate::error::DatabaseError(StoreError::MemoryFull { .. })) =
        &error
    {
        return OperationError::new(OperationErrorKind::Io, error.to_string());
    }
    tracing::warn!(%error, "a memory operation failed");
    OperationError::new(
        OperationErrorKind::Io,
        "the memory could not be reached; try again later",
    )
}

impl Engine {
    /// The memories that hold anything, by name.
    pub async fn memories(&self) -> Result<Vec<MemorySummary>, EngineError> {
        self.ctx.db.read(|store| Ok(store.memories()?)).await
    }

    /// Every entry of `memory`, by key.
    pub async fn memory_entries(&self, memory: &str) -> Result<Vec<MemoryEntry>, EngineError> {
        let memory = memory.to_string();
        self.ctx
            .db
            .read(move |store| Ok(store.memory_entries(&memory)?))
            .await
    }

    /// Removes `key` from `memory`; whether it was there.
    pub async fn forget_memory(&self, memory: &str, key: &str) -> Result<bool, EngineError> {
        self.ctx.db.check_writable()?;
        let (memory, key) = (memory.to_string(), key.to_string());
        self.ctx
            .db
            .write(move |store| store.forget(&memory, &key))
            .await
    }
}
