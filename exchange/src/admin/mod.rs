//! The admin API: JSON over HTTP on its own listener (`admin_listen`), to
//! register, change, pause and remove bidders at run time, and to set their
//! budgets.
//!
//! Its own listener so it can be kept off the publisher-facing network, and
//! so publisher overload (shedding) never locks operators out. Every route,
//! the OpenAPI document included, needs `Authorization: Bearer <token>`:
//! `401` without one, `403` with a wrong one.

pub mod api;
pub mod budgets;
mod handlers;

use std::future::Future;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, put};
use axum::Router;
use tokio::net::TcpListener;
use utoipa::OpenApi;

use crate::config::EndpointPolicy;
use crate::registry::Registry;

/// What the admin handlers share.
#[derive(Debug)]
pub struct AdminState {
    registry: Arc<Registry>,
    /// Budget leases, when budgets are on (the budget routes answer 503 otherwise).
    budgets: Option<Arc<crate::budget::Budgets>>,
    token: String,
    policy: EndpointPolicy,
    /// The OpenAPI document, rendered once.
    openapi: Bytes,
}

impl AdminState {
    /// State for the admin API over `registry`.
    pub fn new(registry: Arc<Registry>, token: String, policy: EndpointPolicy) -> Self {
        Self {
            registry,
            budgets: None,
            token,
            policy,
            openapi: Bytes::from(openapi_document()),
        }
    }

    /// Serves the budget routes over `budgets`.
    pub fn with_budgets(mut self, budgets: Option<Arc<crate::budget::Budgets>>) -> Self {
        self.budgets = budgets;
        self
    }
}

/// The OpenAPI document as JSON.
pub fn openapi_document() -> String {
    api::AdminApi::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// The admin routes, built by a function so tests can drive them without a
/// socket.
pub fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route(
            "/v1/bidders",
            get(handlers::list_bidders).post(handlers::create_bidder),
        )
        .route(
            "/v1/bidders/{name}",
            get(handlers::get_bidder)
                .patch(handlers::patch_bidder)
                .delete(handlers::delete_bidder),
        )
        .route(
            "/v1/bidders/{name}/budget",
            put(budgets::put_bidder_budget)
                .get(budgets::get_bidder_budget)
                .delete(budgets::delete_bidder_budget),
        )
        .route(
            "/v1/bidders/{name}/campaigns/{cid}/budget",
            put(budgets::put_campaign_budget)
                .get(budgets::get_campaign_budget)
                .delete(budgets::delete_campaign_budget),
        )
        .route("/v1/openapi.json", get(handlers::openapi_json))
        .fallback(|| async { handlers::error(StatusCode::NOT_FOUND, "no such route".into(), None) })
        // Outermost, so unknown routes and methods need the token too.
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .with_state(state)
}

/// Serves the admin API on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AdminState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    if let Err(e) = axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::warn!(error = %e, "admin server ended with an error");
    }
}

/// Checks the bearer token before any handler runs.
async fn authenticate(State(s): State<Arc<AdminState>>, req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    match presented {
        None => {
            let mut resp = handlers::error(
                StatusCode::UNAUTHORIZED,
                "missing bearer token".into(),
                None,
            );
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            resp
        }
        Some(t) if !same(t.as_bytes(), s.token.as_bytes()) => {
            handlers::error(StatusCode::FORBIDDEN, "wrong bearer token".into(), None)
        }
        Some(_) => next.run(req).await,
    }
}

/// Compares in time independent of where the first difference is, so the
/// token cannot be guessed byte by byte from response times.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
