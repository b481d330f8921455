//! Checking a workflow as a run would start it, and the step types a workflow may use.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::source::{Inline, WorkflowSource, resolve};
use super::{ApiState, Body, Params};
use crate::error::{ApiError, ErrorBody};

/// What checking a workflow found.
#[derive(Debug, Serialize, ToSchema)]
pub struct Validation {
    /// No problem found.
    pub ok: bool,
    /// The workflow's name, when it reads.
    pub name: Option<String>,
    /// How many steps it has, when it reads.
    pub steps: Option<usize>,
    /// Every problem, each with its file, line, column and step where known.
    pub errors: Vec<Problem>,
}

/// One problem of a workflow.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// The file (`inline` for YAML sent in the request).
    pub file: String,
    /// From 1; absent when the problem is the file's as a whole.
    pub line: Option<u32>,
    pub column: Option<u32>,
    pub step: Option<String>,
    pub message: String,
}

/// Checks a workflow as a run would start it in the workspace: its steps, templates, custom
/// step types and the workflows its `workflow` steps run. A workflow with problems is still a
/// 200 answer, with `ok: false` and every problem.
#[utoipa::path(
    post,
    path = "/v1/workflows/validate",
    tag = "workflows",
    request_body = WorkflowSource,
    responses(
        (status = 200, description = "What was found", body = Validation),
        (status = 422, description = "The request names no workflow, or no workspace", body = ErrorBody)
    )
)]
pub(crate) async fn validate(
    State(state): State<ApiState>,
    Body(source): Body<WorkflowSource>,
) -> Result<Json<Validation>, ApiError> {
    let named = resolve(&state, &source, Inline::Check)?;
    let checked = tokio::task::spawn_blocking(move || {
        let result = stepwise_engine::check_workflow_file(&named.file, Some(&named.workspace));
        (result, named)
    })
    .await
    .map_err(|e| ApiError::internal(format!("checking the workflow stopped: {e}")))?;
    let (result, named) = checked;
    let shown_file = named.file.display().to_string();
    Ok(Json(match result {
        Ok(workflow) => Validation {
            ok: true,
            name: Some(workflow.name.clone()),
            steps: Some(workflow.steps.len()),
            errors: Vec::new(),
        },
        Err(errors) => Validation {
            ok: false,
            name: None,
            steps: None,
            errors: errors
                .into_iter()
                .map(|e| Problem {
                    file: if named.inline && e.file == shown_file {
                        "inline".to_string()
                    } else {
                        e.file
                    },
                    line: (e.line > 0).then_some(e.line),
                    column: (e.line > 0).then_some(e.column),
                    step: e.step,
                    message: e.message,
                })
                .collect(),
        },
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StepTypesQuery {
    /// Whose custom step types (`.stepwise/steps/`) to list besides the built-in ones and the
    /// user's (default: the server's workspace).
    workspace: Option<String>,
}

/// The step types a workflow may use: the built-in ones, then the custom ones the workspace's
/// and the user's manifests declare, each with the fields it takes.
#[utoipa::path(
    get,
    path = "/v1/step-types",
    tag = "workflows",
    params(StepTypesQuery),
    responses((status = 200, description = "Every step type", body = Vec<Object>))
)]
pub(crate) async fn step_types(
    State(state): State<ApiState>,
    Params(query): Params<StepTypesQuery>,
) -> Result<Json<Vec<Value>>, ApiError> {
    let workspace = match query.workspace.as_deref().map(str::trim) {
        None | Some("") => state.workspace.clone(),
        Some(given) => state.workspace.join(given),
    };
    let types = tokio::task::spawn_blocking(move || {
        let mut types = stepwise_core::workflow::builtin_step_types();
        types.extend(stepwise_core::workflow::custom_step_types(
            &stepwise_engine::load_step_types(Some(&workspace)),
        ));
        types
    })
    .await
    .map_err(|e| ApiError::internal(format!("reading the step types stopped: {e}")))?;
    types
        .iter()
        .map(|t| serde_json::to_value(t).map_err(|e| ApiError::internal(e.to_string())))
        .collect::<Result<_, _>>()
        .map(Json)
}
