//! The endpoints, a file per group, gathered into one router whose OpenAPI document is made
//! from the same handlers (`utoipa-axum`): no route is served undocumented, none documented
//! that is not served.

mod approvals;
mod control;
mod events;
mod runs;
mod signals;
mod source;
mod workflows;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, State};
use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi as _};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use stepwise_engine::Engine;

use crate::error::ApiError;

/// What every handler is given.
#[derive(Clone)]
pub(crate) struct ApiState {
    pub(crate) engine: Engine,
    /// Where a relative workspace or workflow path is taken from.
    pub(crate) workspace: PathBuf,
    /// Where workflows sent inline are kept (by their content's hash): a run names its file.
    pub(crate) inline_dir: PathBuf,
    /// Live streams open at once are bounded: each holds a feed of the database.
    pub(crate) streams: Arc<tokio::sync::Semaphore>,
    /// The document, served at `/openapi.json`.
    pub(crate) document: Arc<OnceLock<serde_json::Value>>,
}

/// A JSON body whose problems are answered as the API's errors.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub(crate) struct Body<T>(pub T);

/// Path segments whose problems (not UTF-8, say) are answered as the API's errors.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub(crate) struct Segments<T>(pub T);

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> ApiError {
        ApiError::new(
            rejection.status(),
            "invalid",
            format!("the path: {}", rejection.body_text()),
        )
    }
}

/// Query parameters whose problems are answered as the API's errors.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub(crate) struct Params<T>(pub T);

impl From<JsonRejection> for ApiError {
    /// Its own status (400 not JSON, 413 too large, 415 not `application/json`, 422 not the
    /// fields asked for), with what is wrong in words.
    fn from(rejection: JsonRejection) -> ApiError {
        let kind = if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            "too_large"
        } else {
            "invalid"
        };
        ApiError::new(
            rejection.status(),
            kind,
            format!("the request body: {}", rejection.body_text()),
        )
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> ApiError {
        ApiError::invalid(format!("the query string: {}", rejection.body_text()))
    }
}

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Stepwise local API",
        description = "The Stepwise engine on 127.0.0.1, for editors and scripts: validate workflows, start and follow runs, answer approvals, send signals. Every request carries the user's token (`Authorization: Bearer …`, from the token file `stepwise serve` names); requests from browser pages (with an `Origin` header) are refused."
    ),
    modifiers(&BearerToken),
    security(("token" = [])),
    tags(
        (name = "workflows", description = "Checking workflows and the step types they may use"),
        (name = "runs", description = "Starting, listing and reading runs"),
        (name = "approvals", description = "What waits for a person, and answering it"),
        (name = "control", description = "Pausing, resuming and cancelling runs"),
        (name = "signals", description = "Signals that triggers and waiting steps take")
    )
)]
struct ApiDoc;

struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The token in the user's token file"))
                    .build(),
            ),
        );
    }
}

/// The served document (this very one).
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "workflows",
    responses((status = 200, description = "This API's OpenAPI 3.1 document", body = Object))
)]
async fn openapi_json(State(state): State<ApiState>) -> axum::Json<serde_json::Value> {
    axum::Json(state.document.get().cloned().unwrap_or_default())
}

/// Every route, documented, before it is given its state.
fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(openapi_json))
        .routes(routes!(workflows::validate))
        .routes(routes!(workflows::step_types))
        .routes(routes!(runs::start_run, runs::list_runs))
        .routes(routes!(runs::run_status))
        .routes(routes!(runs::run_cost))
        .routes(routes!(events::events_page))
        .routes(routes!(events::events_stream))
        .routes(routes!(approvals::list_approvals))
        .routes(routes!(approvals::approvals_stream))
        .routes(routes!(approvals::approve))
        .routes(routes!(approvals::reject))
        .routes(routes!(approvals::continue_run))
        .routes(routes!(control::pause))
        .routes(routes!(control::resume))
        .routes(routes!(control::cancel))
        .routes(routes!(signals::send_signal))
}

/// The router and its document (which `/openapi.json` serves).
pub(crate) fn router(state: ApiState) -> (Router, OpenApi) {
    let document = Arc::clone(&state.document);
    let (router, api) = routes().with_state(state).split_for_parts();
    let _ = document.set(serde_json::to_value(&api).unwrap_or_default());
    (router, api)
}

/// The document alone, as `stepwise serve --openapi` prints it.
pub fn document() -> OpenApi {
    routes().split_for_parts().1
}
