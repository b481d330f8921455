//! A run's log: a page at a time, or live as server-sent events (each event as it is
//! committed, by any process, and the progress of running operations).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use stepwise_core::ids::EventSeq;
use stepwise_engine::RunUpdate;
use utoipa::{IntoParams, ToSchema};

use super::{ApiState, Params, Segments};
use crate::error::{ApiError, ErrorBody};
use crate::views::EventItem;

/// The most events one page holds.
const EVENTS_PAGE_MAX: usize = 1000;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Only events after this seq (default 0: from the first).
    after: Option<u64>,
    /// The most events to answer (default 200, at most 1000).
    limit: Option<usize>,
}

/// A page of a run's log.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventsPage {
    pub run_id: String,
    /// The run's status as the page was read.
    pub status: String,
    pub events: Vec<EventItem>,
    /// Ask with `after` set to this for the next page.
    pub next_after: u64,
    /// More events are recorded after this page.
    pub more: bool,
}

/// A page of a run's events, in seq order.
#[utoipa::path(
    get,
    path = "/v1/runs/{run}/events",
    tag = "runs",
    params(("run" = String, Path, description = "The run's id, or a prefix that names one run"), EventsQuery),
    responses(
        (status = 200, description = "A page of events", body = EventsPage),
        (status = 404, description = "No such run", body = ErrorBody)
    )
)]
pub(crate) async fn events_page(
    State(state): State<ApiState>,
    Segments(run): Segments<String>,
    Params(query): Params<EventsQuery>,
) -> Result<Json<EventsPage>, ApiError> {
    let after = seq_after(query.after)?;
    let limit = query.limit.unwrap_or(200).clamp(1, EVENTS_PAGE_MAX);
    let page = state
        .engine
        .read_log(&run, EventSeq::new(after), limit)
        .await?;
    let next_after = page.events.last().map_or(after, |e| e.seq.get());
    Ok(Json(EventsPage {
        run_id: page.run.run_id.to_string(),
        status: page.run.status.as_str().to_string(),
        more: page.run.last_seq.get() > next_after,
        next_after,
        events: page
            .events
            .iter()
            .map(|e| EventItem::new(e.seq.get(), e.recorded_at_ms, &e.event))
            .collect(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Only events after this seq (default 0; a reconnecting client's `Last-Event-ID` wins
    /// when it is later).
    after: Option<u64>,
}

/// A run's events live, as server-sent events: each `event` (its `id` is the seq) as it is
/// committed by any process, `progress` with the text a running operation (a command, a
/// model's reply) produced since the last, and `end` once the run has ended. Reconnect with
/// `Last-Event-ID` to go on where the stream stopped.
#[utoipa::path(
    get,
    path = "/v1/runs/{run}/events/stream",
    tag = "runs",
    params(("run" = String, Path, description = "The run's id, or a prefix that names one run"), StreamQuery),
    responses(
        (status = 200, description = "`text/event-stream`: `event` (data: an event), `progress` (data: {op, step, text}), `end` (data: {status})", content_type = "text/event-stream", body = String),
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 503, description = "Too many live streams are open", body = ErrorBody)
    )
)]
pub(crate) async fn events_stream(
    State(state): State<ApiState>,
    Segments(run): Segments<String>,
    Params(query): Params<StreamQuery>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let permit = open_stream(&state)?;
    let row = state.engine.find_run(&run).await?;
    let resumed = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let after = seq_after(query.after)?.max(seq_after(resumed)?);
    let feed = state
        .engine
        .follow_run(row.run_id.as_str(), EventSeq::new(after));
    let engine = state.engine.clone();
    let run_id = row.run_id.clone();
    let stream = futures_util::stream::unfold(
        (feed, false, Some(permit)),
        move |(mut feed, ended, permit)| {
            let engine = engine.clone();
            let run_id = run_id.clone();
            async move {
                if ended {
                    return None;
                }
                let (item, ended) = match feed.next().await {
                    Some(Ok(RunUpdate::Event(event))) => {
                        let item = EventItem::new(
                            event.seq().get(),
                            event.stored.recorded_at_ms,
                            &event.event,
                        );
                        (
                            SseEvent::default()
                                .event("event")
                                .id(event.seq().get().to_string())
                                .json_data(item),
                            false,
                        )
                    }
                    Some(Ok(RunUpdate::Progress { op, step, text })) => (
                        SseEvent::default().event("progress").json_data(
                            serde_json::json!({ "op": op.get(), "step": step, "text": text }),
                        ),
                        false,
                    ),
                    Some(Err(error)) => (
                        SseEvent::default()
                            .event("error")
                            .json_data(serde_json::json!({ "message": error.to_string() })),
                        true,
                    ),
                    None => {
                        let status = engine
                            .find_run(run_id.as_str())
                            .await
                            .map(|row| row.status.as_str().to_string())
                            .unwrap_or_default();
                        (
                            SseEvent::default()
                                .event("end")
                                .json_data(serde_json::json!({ "status": status })),
                            true,
                        )
                    }
                };
                let item = item.unwrap_or_else(|_| SseEvent::default().event("error"));
                Some((Ok(item), (feed, ended, permit)))
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// `after` as given (default 0), refused when no log could reach it.
fn seq_after(after: Option<u64>) -> Result<u64, ApiError> {
    match after {
        None => Ok(0),
        Some(after) if i64::try_from(after).is_ok() => Ok(after),
        Some(after) => Err(ApiError::invalid(format!(
            "`after` is {after}; a seq is at most {}",
            i64::MAX
        ))),
    }
}

/// A place for one more live stream, or 503 when all are taken.
pub(crate) fn open_stream(state: &ApiState) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
    Arc::clone(&state.streams).try_acquire_owned().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "too many live streams are open; close one and ask again",
        )
    })
}
