//! `GET /v1/events?from=N&limit=M`: the event log, for the operator. The node stream (next
//! milestone) sends the same events in the same order.

use axum::Json;
use axum::extract::State;
use outpost_config::{Event, Seq};
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ErrorKind};
use super::extract::{ApiQuery, Auth};
use super::{AppState, services};
use crate::auth::Principal;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// First sequence number wanted. Default: 1 (the start).
    from: Option<u64>,
    limit: Option<usize>,
}

/// A page of the log. `next` is the `from` of the next page; `last_seq` the newest event's
/// number, so a reader knows how far behind it is.
#[derive(Debug, Serialize)]
pub struct EventPage {
    events: Vec<Event>,
    next: Seq,
    last_seq: Seq,
}

pub async fn list(
    State(app): State<AppState>,
    Auth(principal): Auth,
    ApiQuery(query): ApiQuery<EventsQuery>,
) -> Result<Json<EventPage>, ApiError> {
    if principal != Principal::Operator {
        return Err(ApiError::new(ErrorKind::Forbidden, "the event log is for operator tokens"));
    }
    let limit = services::page_limit(query.limit, app.limits.max_page)?;
    let from = Seq(query.from.unwrap_or(1).max(1));
    let events = app.store.events(from, limit).await?;
    // Read after the events, so that `last_seq` is never behind the page.
    let last_seq = app.store.last_seq().await?;
    let next = events.last().map_or(from, |e| e.seq.next());
    Ok(Json(EventPage { events, next, last_seq }))
}
