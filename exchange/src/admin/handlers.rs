//! The admin API's handlers. Each writes to the database, then reloads this
//! replica's bidder set before answering, so the caller's next auction on
//! this replica already sees the change (other replicas follow within a
//! poll interval).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::api::{ApiError, BidderPatch, BidderView, NewBidder};
use super::AdminState;
use crate::registry::{Store, StoreError};

/// A JSON response.
pub(super) fn json<T: Serialize>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string(), None),
    }
}

/// A JSON error.
pub(super) fn error(status: StatusCode, error: String, field: Option<String>) -> Response {
    let body = ApiError { error, field };
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    (status, [(header::CONTENT_TYPE, "application/json")], bytes).into_response()
}

/// A refused call: status, message, and the field at fault if any. Small,
/// unlike a `Response`, so `Result`s carrying it stay cheap.
#[derive(Debug)]
pub(super) struct Failure {
    status: StatusCode,
    error: String,
    field: Option<String>,
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        error(self.status, self.error, self.field)
    }
}

pub(super) fn fail(status: StatusCode, error: impl Into<String>) -> Failure {
    Failure {
        status,
        error: error.into(),
        field: None,
    }
}

pub(super) fn bad(field: impl Into<String>, msg: impl Into<String>) -> Failure {
    Failure {
        status: StatusCode::BAD_REQUEST,
        error: msg.into(),
        field: Some(field.into()),
    }
}

fn store_error(e: StoreError) -> Failure {
    match e {
        StoreError::Exists(_) => Failure {
            status: StatusCode::CONFLICT,
            error: e.to_string(),
            field: Some("name".into()),
        },
        StoreError::NotFound(_) => fail(StatusCode::NOT_FOUND, e.to_string()),
        other => {
            tracing::error!(error = %other, "admin API: registry database error");
            fail(StatusCode::SERVICE_UNAVAILABLE, other.to_string())
        }
    }
}

/// Decodes a JSON body; the error names the field (`endpoints[0]`, or the
/// unknown or missing key).
pub(super) fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, Failure> {
    // serde would also read a struct from an array of its fields in order;
    // the API only speaks objects.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(bad("body", "the body must be a JSON object"));
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let path = e.path().to_string();
        let msg = e.inner().to_string();
        let prefix = if path == "." {
            String::new()
        } else {
            format!("{path}.")
        };
        // Unknown and missing keys are reported at their parent: name the key.
        let key = ["unknown field `", "missing field `", "unknown variant `"]
            .iter()
            .find_map(|p| msg.strip_prefix(p))
            .and_then(|rest| rest.split('`').next());
        let field = match key {
            // serde_path_to_error names an unknown key itself, a missing
            // one by its parent.
            Some(k)
                if !msg.starts_with("unknown variant") && path.rsplit('.').next() != Some(k) =>
            {
                format!("{prefix}{k}")
            }
            _ if path == "." => "body".to_owned(),
            _ => path,
        };
        bad(field, msg)
    })?;
    de.end().map_err(|e| bad("body", e.to_string()))?;
    Ok(value)
}

fn store(s: &AdminState) -> Result<&Store, Failure> {
    s.registry.store().ok_or_else(|| {
        fail(
            StatusCode::SERVICE_UNAVAILABLE,
            "the registry has no database",
        )
    })
}

async fn check_endpoints(s: &AdminState, endpoints: &[String]) -> Result<(), Failure> {
    for (i, e) in endpoints.iter().enumerate() {
        s.policy
            .check(e)
            .await
            .map_err(|m| bad(format!("endpoints[{i}]"), m))?;
    }
    Ok(())
}

/// Makes this replica see the change before answering.
async fn reload(s: &AdminState) {
    if let Err(e) = s.registry.reload().await {
        tracing::warn!(error = %e, "reload after an admin change failed; the poller will retry");
    }
}

fn view(s: &AdminState, stored: crate::registry::Stored) -> BidderView {
    let set = s.registry.current();
    let live = set.get(&stored.entry.name).map(|b| &**b);
    BidderView::new(stored, live)
}

fn name_of(p: Result<Path<String>, PathRejection>) -> Result<String, Failure> {
    p.map(|Path(n)| n)
        .map_err(|e| fail(StatusCode::NOT_FOUND, e.body_text().to_lowercase()))
}

/// Registers a bidder.
#[utoipa::path(post, path = "/v1/bidders", request_body = NewBidder, tag = "bidders",
    responses(
        (status = 201, description = "registered; live on this replica now, on the others within a second", body = BidderView),
        (status = 400, description = "a field is invalid; `field` names it", body = ApiError),
        (status = 401, description = "no bearer token", body = ApiError),
        (status = 403, description = "wrong bearer token", body = ApiError),
        (status = 409, description = "a bidder with this name exists", body = ApiError),
        (status = 503, description = "the registry database is unavailable", body = ApiError),
    ))]
pub(super) async fn create_bidder(State(s): State<Arc<AdminState>>, body: Bytes) -> Response {
    let run = async {
        let new: NewBidder = parse(&body)?;
        let entry = new.into_entry();
        entry.check().map_err(|(k, m)| bad(k, m))?;
        check_endpoints(&s, &entry.endpoints).await?;
        let stored = store(&s)?.insert(&entry).await.map_err(store_error)?;
        tracing::info!(bidder = %entry.name, "admin: bidder registered");
        reload(&s).await;
        Ok::<_, Failure>(json(StatusCode::CREATED, &view(&s, stored)))
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

/// Lists every bidder.
#[utoipa::path(get, path = "/v1/bidders", tag = "bidders",
    responses(
        (status = 200, description = "every registered bidder, by name", body = Vec<BidderView>),
        (status = 401, description = "no bearer token", body = ApiError),
        (status = 403, description = "wrong bearer token", body = ApiError),
        (status = 503, description = "the registry database is unavailable", body = ApiError),
    ))]
pub(super) async fn list_bidders(State(s): State<Arc<AdminState>>) -> Response {
    let run = async {
        let all = store(&s)?.list().await.map_err(store_error)?;
        let views: Vec<BidderView> = all.into_iter().map(|b| view(&s, b)).collect();
        Ok::<_, Failure>(json(StatusCode::OK, &views))
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

/// One bidder, with its live state on this replica.
#[utoipa::path(get, path = "/v1/bidders/{name}", tag = "bidders",
    params(("name" = String, Path, description = "bidder name")),
    responses(
        (status = 200, description = "the bidder", body = BidderView),
        (status = 401, description = "no bearer token", body = ApiError),
        (status = 403, description = "wrong bearer token", body = ApiError),
        (status = 404, description = "no such bidder", body = ApiError),
        (status = 503, description = "the registry database is unavailable", body = ApiError),
    ))]
pub(super) async fn get_bidder(
    State(s): State<Arc<AdminState>>,
    name: Result<Path<String>, PathRejection>,
) -> Response {
    let run = async {
        let name = name_of(name)?;
        let stored = store(&s)?.get(&name).await.map_err(store_error)?;
        Ok::<_, Failure>(json(StatusCode::OK, &view(&s, stored)))
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

/// Changes a bidder: endpoints, protocol, limits, circuit settings, or
/// `enabled` to pause and resume it.
#[utoipa::path(patch, path = "/v1/bidders/{name}", request_body = BidderPatch, tag = "bidders",
    params(("name" = String, Path, description = "bidder name")),
    responses(
        (status = 200, description = "the changed bidder", body = BidderView),
        (status = 400, description = "a field is invalid; `field` names it", body = ApiError),
        (status = 401, description = "no bearer token", body = ApiError),
        (status = 403, description = "wrong bearer token", body = ApiError),
        (status = 404, description = "no such bidder", body = ApiError),
        (status = 503, description = "the registry database is unavailable", body = ApiError),
    ))]
pub(super) async fn patch_bidder(
    State(s): State<Arc<AdminState>>,
    name: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Response {
    let run = async {
        let name = name_of(name)?;
        let patch: BidderPatch = parse(&body)?;
        if let Some(e) = &patch.endpoints {
            check_endpoints(&s, e).await?;
        }
        let result = store(&s)?
            .update(&name, |entry| {
                patch.apply(entry);
                entry.check().map_err(|(k, m)| bad(k, m))
            })
            .await
            .map_err(store_error)?;
        let stored = result?;
        tracing::info!(bidder = %name, enabled = stored.entry.enabled, "admin: bidder changed");
        reload(&s).await;
        Ok::<_, Failure>(json(StatusCode::OK, &view(&s, stored)))
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

/// Removes a bidder.
#[utoipa::path(delete, path = "/v1/bidders/{name}", tag = "bidders",
    params(("name" = String, Path, description = "bidder name")),
    responses(
        (status = 204, description = "removed"),
        (status = 401, description = "no bearer token", body = ApiError),
        (status = 403, description = "wrong bearer token", body = ApiError),
        (status = 404, description = "no such bidder", body = ApiError),
        (status = 503, description = "the registry database is unavailable", body = ApiError),
    ))]
pub(super) async fn delete_bidder(
    State(s): State<Arc<AdminState>>,
    name: Result<Path<String>, PathRejection>,
) -> Response {
    let run = async {
        let name = name_of(name)?;
        store(&s)?.delete(&name).await.map_err(store_error)?;
        tracing::info!(bidder = %name, "admin: bidder removed");
        reload(&s).await;
        Ok::<_, Failure>(StatusCode::NO_CONTENT.into_response())
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

/// This API's OpenAPI 3.1 document, generated from the code.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "meta",
    responses(
        (status = 200, description = "the OpenAPI document", body = Object, content_type = "application/json"),
        (status = 401, description = "no bearer token", body = ApiError),
        (status = 403, description = "wrong bearer token", body = ApiError),
    ))]
pub(super) async fn openapi_json(State(s): State<Arc<AdminState>>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        s.openapi.clone(),
    )
        .into_response()
}
