//! Converting between the core's typed events and the store's rows.

use stepwise_core::event::{EVENT_SCHEMA_VERSION, Event};
use stepwise_core::ids::{EventSeq, RunId, StepId};
use stepwise_store::{NewEvent, StoredEvent};

use crate::error::EngineError;

/// An event ready to append: the event, what caused it, and when it was recorded. An event
/// that cannot be serialised is an error that stops the commit.
pub(crate) fn new_event(
    event: &Event,
    causation_seq: Option<EventSeq>,
    recorded_at_ms: i64,
) -> Result<NewEvent, EngineError> {
    let payload = event.to_payload().map_err(|e| {
        EngineError::Internal(format!(
            "event {} cannot be recorded: {e}",
            event.type_name()
        ))
    })?;
    Ok(NewEvent {
        event_type: event.type_name().to_string(),
        schema_version: EVENT_SCHEMA_VERSION,
        recorded_at_ms,
        correlation_id: event.step().map(StepId::to_string),
        causation_seq,
        payload,
    })
}

/// A stored event read back as the core's type.
pub fn decode(run_id: &RunId, stored: &StoredEvent) -> Result<Event, EngineError> {
    Event::from_payload(
        &stored.event_type,
        stored.schema_version,
        stored.payload.clone(),
    )
    .map_err(|source| EngineError::Decode {
        run_id: run_id.clone(),
        seq: stored.seq,
        source,
    })
}

/// The seq of the event an input answers, for its causation id.
pub(crate) fn input_causation(
    event: &Event,
    requested_seq: impl Fn(&StepId) -> Option<EventSeq>,
) -> Option<EventSeq> {
    match event {
        Event::OperationSucceeded { op, .. }
        | Event::OperationFailed { op, .. }
        | Event::OperationOutcomeUnknown { op }
        | Event::OperationResolved { op, .. } => Some(*op),
        Event::ApprovalGranted(g) => requested_seq(&g.step),
        Event::ApprovalRejected { step, .. } | Event::ProposalVoided { step, .. } => {
            requested_seq(step)
        }
        _ => None,
    }
}
