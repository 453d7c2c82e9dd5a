//! The bulk routes: `POST /bulkthings` and `GET /bulkthings/{taskId}` from the seed, plus the
//! rows of a task and its cancellation.
//!
//! A task is accepted synchronously (template and rows checked, task stored, rows sent to the
//! command queue in chunks) and answered 201 with the seed's `BulkRegistrationTask`; the rows
//! run on the workers. An `Idempotency-Key` header makes a resubmission the same task.

use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::{ApiError, cdf_json};
use crate::app::App;
use crate::domain::bulk::{RowOutcome, RowResult, TaskId};
use crate::domain::command::BulkRequest;
use crate::domain::{CommandError, ErrorCode, IdempotencyKey, Location};

/// Largest page of rows one request returns.
const MAX_PAGE: usize = 1_000;

fn task_id(text: &str) -> Result<TaskId, ApiError> {
    // Anything but a UUID cannot be a task: answered like an unknown one.
    TaskId::parse(text).ok_or_else(|| ApiError(CommandError::new(ErrorCode::NotFound, "no such bulk task")))
}

/// POST /bulkthings: 201 with the accepted task. Fields the request type does not name are
/// ignored, as CDF ignored them. An `Idempotency-Key` is the caller's own, as for
/// `POST /things`: the submission runs through the record `rest:<caller>:<key>`, so a
/// resubmission is the same task, the key with another body is refused (422), and it never
/// meets a queued bulk command's task nor another caller's.
pub(super) async fn submit(
    State(app): State<App>,
    caller: Option<Extension<super::guard::Caller>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body = super::known_fields(
        super::object_body(&body)?,
        &["provisioningTemplateId", "parameters", "rowsObject", "cdfProvisioningParameters", "strict", "rowEvents"],
    );
    let request: BulkRequest = serde_path_to_error::deserialize(body.clone()).map_err(|e| {
        ApiError(
            CommandError::new(
                ErrorCode::ValidationFailed,
                format!("body is not a BulkRegistrationRequest: {}", e.inner()),
            )
            .at(Location::of_serde_path(Location::payload(), e.path())),
        )
    })?;
    let task = match super::idempotency_key(&headers)? {
        Some(key) => {
            let caller = caller.map_or_else(super::guard::Caller::anonymous, |Extension(caller)| caller);
            app.accept_bulk_keyed(caller.as_str(), &key, &request, &body).await.map_err(ApiError)?
        }
        None => {
            let key = IdempotencyKey::new(uuid::Uuid::new_v4().to_string());
            app.accept_bulk(&key, &request).await.map_err(ApiError)?
        }
    };
    Ok(cdf_json(StatusCode::CREATED, &task.view()))
}

/// GET /bulkthings/{taskId}: 200 with the task, 404 for an unknown one.
pub(super) async fn task(State(app): State<App>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let task = app.bulk_task(&task_id(&id)?).await.map_err(ApiError)?;
    Ok(cdf_json(StatusCode::OK, &task.view()))
}

/// POST /bulkthings/{taskId}/cancel: 200 with the task after the cancel.
pub(super) async fn cancel(State(app): State<App>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let task = app.cancel_bulk(&task_id(&id)?).await.map_err(ApiError)?;
    Ok(cdf_json(StatusCode::OK, &task.view()))
}

/// Query of the rows route.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RowsQuery {
    /// Only rows with this outcome (`SUCCEEDED`, `FAILED`, `SKIPPED`).
    outcome: Option<RowOutcome>,
    /// Rows after this row number (the `next` of the previous page).
    after: Option<u32>,
    /// Page size (default 100, at most 1,000).
    limit: Option<usize>,
}

/// A page of rows.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RowsPage {
    rows: Vec<RowResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<u32>,
}

/// GET /bulkthings/{taskId}/rows: the rows' results, paged.
pub(super) async fn rows(
    State(app): State<App>,
    Path(id): Path<String>,
    Query(query): Query<RowsQuery>,
) -> Result<Response, ApiError> {
    let limit = query.limit.unwrap_or(100).clamp(1, MAX_PAGE);
    let page = app.bulk_rows(&task_id(&id)?, query.after, limit, query.outcome).await.map_err(ApiError)?;
    Ok(cdf_json(StatusCode::OK, &RowsPage { rows: page.rows, next: page.next }))
}
