//! The workflow file format as written: the serde types a YAML file is read into, and the
//! source of the published JSON Schema. Nothing here is checked beyond its shape; see
//! `compile` for the rules that span fields and steps.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

/// A workflow file.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "Stepwise workflow")]
pub struct WorkflowDef {
    /// A short name shown in run lists.
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Inputs the run is started with (`--input name=value`), available as `inputs.<name>`.
    #[serde(default)]
    pub inputs: BTreeMap<String, InputDef>,
    /// How many steps may run at the same time (default 4).
    #[serde(default)]
    pub max_parallel: Option<u32>,
    /// Extra approval rules. A workflow can only tighten policy: `ask` and `deny` only.
    #[serde(default)]
    pub policy: Option<PolicyDef>,
    /// Who may answer the run's questions (approve or reject): names for every kind, or per
    /// kind (`edit_file`, `run_command`, `budget`, `plan`, `mcp_call`, …). Anyone else is
    /// refused. A policy file's `approvers` apply as well: a person must be in both.
    #[serde(default)]
    pub approvers: Option<crate::approvers::ApproversDef>,
    /// `false`: the person who started a run may not approve its questions (rejecting stays
    /// open to them).
    #[serde(default)]
    pub self_approval: Option<bool>,
    /// What the run may spend on model calls. A call whose estimated cost would cross what
    /// remains waits for a person (`stepwise run --budget-usd` overrides `usd`).
    #[serde(default)]
    pub budget: Option<BudgetDef>,
    /// Steps before which a run waits for a person to continue (`stepwise continue`), as
    /// `stepwise run --break STEP` does.
    #[serde(default)]
    pub breakpoints: Vec<String>,
    pub steps: Vec<StepDef>,
    /// What the workflow gives back when another workflow runs it as a step (`type:
    /// workflow`): named templates over `inputs` and `steps`, evaluated when the run has
    /// succeeded. Without it, the output is each step's output by step id.
    #[serde(default)]
    pub outputs: Option<BTreeMap<String, serde_json::Value>>,
    /// What starts runs of this workflow without a person (a watcher: the app, or
    /// `stepwise watch`): files changing in the workspace, a schedule, a signal.
    #[serde(default, rename = "on")]
    pub triggers: Option<super::triggers::TriggersDef>,
    /// Tell a person (a desktop notification, an event in the log) once the run has been going
    /// for longer than this.
    #[serde(default)]
    pub alert: Option<super::alerts::AlertDef>,
}

/// A declared input.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InputDef {
    #[serde(rename = "type")]
    pub kind: InputType,
    /// Used when the run is started without this input; without a default the input is required.
    #[serde(default)]
    pub default: Option<serde_json::Value>,
    #[serde(default)]
    pub description: Option<String>,
}

/// The type of an input value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum InputType {
    String,
    Integer,
    Number,
    Boolean,
    List,
    Object,
}

/// One step. `type` selects the action and the fields it takes.
#[derive(Debug, Deserialize, JsonSchema)]
#[schemars(extend("unevaluatedProperties" = false))]
pub struct StepDef {
    /// Unique within the workflow; other steps refer to it in `needs` and `${steps.<id>...}`.
    #[schemars(with = "String")]
    pub id: Spanned<String>,
    /// Steps that must finish first. Steps whose needs are met run in parallel.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub needs: Vec<Spanned<String>>,
    /// An expression (`${...}` or bare); the step is skipped when it is false.
    #[serde(default)]
    pub when: Option<String>,
    /// Run after the needs `succeeded` (default: otherwise the step is skipped) or after they
    /// `finished` whatever their outcome.
    #[serde(default)]
    pub after: Option<AfterDef>,
    #[serde(default)]
    pub retry: Option<RetryDef>,
    /// How long the step's operation may take, e.g. `30s`, `2m`.
    #[serde(default)]
    pub timeout: Option<String>,
    /// `required`: this step always waits for a person, whatever the policy says. A workflow
    /// can only tighten approval.
    #[serde(default)]
    pub approval: Option<String>,
    /// Tell a person (a desktop notification, an event in the log) once the step has been
    /// going for longer than this.
    #[serde(default)]
    pub alert: Option<super::alerts::AlertDef>,
    /// Run the step again, round after round (`round`, from 1, and `previous`, the last
    /// round's output, in its templates), until `until` is true or `max` rounds have run.
    #[serde(default)]
    pub repeat: Option<RepeatDef>,
    /// Run the step once per item of this list (at most 1,000), `item` and `index` in its
    /// templates; its output is the list of the iterations' outputs, in order.
    #[serde(default)]
    pub for_each: Option<String>,
    /// With `for_each`: how many iterations may run at once (default: the run's).
    #[serde(default)]
    pub max_parallel: Option<u32>,
    /// With `for_each`: a failed iteration does not fail the step; its entry in the output is
    /// `{"error": …}`.
    #[serde(default)]
    pub continue_on_error: Option<bool>,
    /// A step that undoes this one (its own `id`, usually a command or an edit; it may read
    /// this step's output): when the run fails or is cancelled after this step succeeded, the
    /// compensations of the steps that succeeded run, the last to succeed first, each gated
    /// and recorded like any step.
    #[serde(default)]
    pub compensate: Option<Box<StepDef>>,
    #[serde(flatten)]
    pub action: StepAction,
}

/// What a step does: a built-in type's fields, or a custom type's name and `with:` inputs.
#[derive(Debug)]
pub enum StepAction {
    Builtin(ActionDef),
    Custom {
        type_name: String,
        with: BTreeMap<String, serde_json::Value>,
    },
}

impl<'de> Deserialize<'de> for StepAction {
    /// A built-in `type` is read with its fields as [`ActionDef`] says; any other names a
    /// custom step type (checked against the manifests when the workflow is compiled), which
    /// takes only `with:`.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut fields = serde_json::Map::<String, serde_json::Value>::deserialize(deserializer)?;
        let type_name = match fields.get("type") {
            Some(serde_json::Value::String(name)) => name.clone(),
            Some(other) => {
                return Err(D::Error::custom(format!(
                    "`type` must be the name of a step type, not `{other}`"
                )));
            }
            None => return Err(D::Error::missing_field("type")),
        };
        if crate::custom_step::BUILTIN_TYPE_NAMES.contains(&type_name.as_str()) {
            return ActionDef::deserialize(serde_json::Value::Object(fields))
                .map(StepAction::Builtin)
                .map_err(D::Error::custom);
        }
        fields.remove("type");
        let with = match fields.remove("with") {
            None | Some(serde_json::Value::Null) => BTreeMap::new(),
            Some(serde_json::Value::Object(with)) => with.into_iter().collect(),
            Some(_) => {
                return Err(D::Error::custom(format!(
                    "`with` must be a map of the `{type_name}` step type's inputs"
                )));
            }
        };
        if let Some(field) = fields.keys().next() {
            return Err(D::Error::custom(format!(
                "unknown field `{field}`, expected `with`: a `{type_name}` step (a custom step type) takes its inputs under `with`"
            )));
        }
        Ok(StepAction::Custom { type_name, with })
    }
}

impl JsonSchema for StepAction {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "StepAction".into()
    }

    fn inline_schema() -> bool {
        true
    }

    /// The built-in types' variants, and one for a custom type: any other `type`, with `with`.
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let mut schema = ActionDef::json_schema(generator);
        let custom = serde_json::json!({
            "description": "A step type declared by a manifest (`.stepwise/steps/NAME.yaml` in the workspace, or `stepwise/steps/NAME.yaml` in the user's config dir; see `stepwise steps`): its inputs under `with`, checked against the manifest's schema.",
            "type": "object",
            "properties": {
                "type": {
                    "type": "string",
                    "not": {"enum": crate::custom_step::BUILTIN_TYPE_NAMES},
                },
                "with": {"type": "object"},
            },
            "required": ["type"],
        });
        if let Some(serde_json::Value::Array(variants)) = schema.get_mut("oneOf") {
            variants.push(custom);
        }
        schema
    }
}

/// When a step runs relative to its needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AfterDef {
    Succeeded,
    Finished,
}

/// Rounds of a step.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RepeatDef {
    /// Rounds at most, the first included (1 to 50).
    pub max: u32,
    /// Checked after each round, with `output` (the round's), `previous` and `round`: the
    /// step ends when it is true.
    #[serde(default)]
    pub until: Option<String>,
}

/// Retries of a failing step.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryDef {
    /// Attempts in all, the first included (default 1: no retry).
    pub max_attempts: u32,
    /// Delay before the second attempt, doubling after each failure (default `1s`).
    #[serde(default)]
    pub backoff: Option<String>,
    /// Upper bound of the delay (default `60s`).
    #[serde(default)]
    pub max_backoff: Option<String>,
}

/// What a step does.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ActionDef {
    /// Read a UTF-8 text file; output: `content`, `path`, `hash`.
    ReadFile { path: String },
    /// Write a file: either the whole `content`, or `find` (must occur exactly once) and
    /// `replace`. Needs approval by default; the proposal shows the diff.
    EditFile {
        path: String,
        #[serde(default)]
        content: Option<String>,
        #[serde(default)]
        find: Option<String>,
        #[serde(default)]
        replace: Option<String>,
    },
    /// Run a command (argv list, or a string run through `sh -c`). Needs approval by default.
    /// Output: `exit_code`, `stdout`, `stderr`.
    RunCommand {
        command: CommandDef,
        /// Working directory inside the workspace (default: the workspace root).
        #[serde(default)]
        cwd: Option<String>,
        /// Variables to set (values may use templates).
        #[serde(default)]
        env: BTreeMap<String, String>,
        /// Variables passed through from Stepwise's own environment, by name only.
        #[serde(default)]
        pass_env: Vec<String>,
        /// Bytes of stdout and of stderr to keep in the log (default 1 MiB each, at most 8 MiB).
        #[serde(default)]
        max_output: Option<u64>,
        /// Also stream the whole of stdout and stderr, however large, to files under the
        /// workspace's `.stepwise/output/<run>/` (their paths are in the step's output as
        /// `stdout_file` and `stderr_file`). Never held in memory.
        #[serde(default)]
        save_output: bool,
    },
    /// Compute named values from templates; output: the values.
    Set {
        values: BTreeMap<String, serde_json::Value>,
    },
    /// Wait for a person to approve or reject, showing `message`.
    Approval { message: String },
    /// Wait until a signal named `name` arrives (`stepwise signal NAME --data JSON`); its
    /// payload is the step's output. Each signal is taken by one waiting step; `timeout` fails
    /// the step when none came in time.
    WaitSignal { name: String },
    /// Run another workflow as this step: a child run in the same workspace, with its own
    /// log, approvals and lane. `path` is the workflow file, relative to this one or to the
    /// workspace's `workflows/`; `inputs` are templates. Output: the child workflow's
    /// `outputs`, and `run_id`, the child run.
    Workflow {
        path: String,
        #[serde(default)]
        inputs: BTreeMap<String, serde_json::Value>,
    },
    /// Ask a model (`analyze` is the same). Give `prompt`, or `messages`; `system` is put
    /// first. Output: `text`, `finish_reason`, `usage`, `cost_micro_usd`, `model`; with
    /// `output_schema`, the reply itself as a JSON value valid against that schema.
    #[serde(alias = "analyze")]
    Prompt {
        /// A model alias from the settings (`models:`).
        model: String,
        #[serde(default)]
        prompt: Option<String>,
        #[serde(default)]
        messages: Option<Vec<MessageDef>>,
        #[serde(default)]
        system: Option<String>,
        /// 0 to 2 (the provider's default when absent).
        #[serde(default)]
        temperature: Option<f64>,
        /// The longest reply, in tokens (default 1024); also what a budget reserves for it.
        #[serde(default)]
        max_tokens: Option<u32>,
        /// A JSON Schema the reply must be a JSON value of (structured output).
        #[serde(default)]
        #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
        output_schema: Option<serde_json::Value>,
        /// How many times a reply that does not match `output_schema` is asked again, with
        /// what was wrong (default 2).
        #[serde(default)]
        schema_retries: Option<u32>,
    },
    /// Ask a model to plan steps toward `goal`. The plan is a proposal, shown with what the
    /// policy would ask of each planned step; once approved, its steps join the run after this
    /// one and pass through the normal gates. Planned steps may read the run's inputs and one
    /// another, and may not plan again. Output: `planned`, the ids of the steps.
    Plan {
        model: String,
        goal: String,
        /// What the model should know (e.g. files read by earlier steps).
        #[serde(default)]
        context: Option<String>,
        /// At most this many steps (default 10, at most 50).
        #[serde(default)]
        max_steps: Option<u32>,
        #[serde(default)]
        temperature: Option<f64>,
        #[serde(default)]
        max_tokens: Option<u32>,
    },
    /// A model that uses tools in a loop until it answers: it reads, lists and searches the
    /// workspace's files, proposes edits, runs commands and asks a person questions, each call
    /// a recorded operation under the same policy and approvals as a step of that kind; its
    /// final reply is the step's output, as a `prompt` step's (with `output_schema`, the
    /// value).
    Agent {
        /// A model alias from the settings (`models:`).
        model: String,
        /// The task, a template.
        instructions: String,
        #[serde(default)]
        system: Option<String>,
        /// The built-in tools it may call (default: all of them): `read_file`, `list_files`,
        /// `search`, `edit_file`, `write_file`, `run_command`, `ask_person` (and with `memory`,
        /// `remember` and `recall`).
        #[serde(default)]
        #[schemars(extend("uniqueItems" = true, "items" = {"enum": [
            "read_file", "list_files", "search", "edit_file", "write_file", "run_command",
            "ask_person", "remember", "recall"
        ]}))]
        tools: Option<Vec<String>>,
        /// MCP servers of the user's settings (`mcp_servers:`) whose tools it may call too,
        /// under the `mcp_call` rules of the policy (which ask by default).
        #[serde(default)]
        #[schemars(extend("uniqueItems" = true, "items" = {
            "type": "string", "pattern": "^[A-Za-z0-9_-]{1,32}$"
        }))]
        mcp: Option<Vec<String>>,
        /// The most model turns it may take (default 30, at most 200).
        #[serde(default)]
        #[schemars(range(min = 1, max = 200))]
        max_turns: Option<u32>,
        /// A memory shared by every run (by this name): the agent is also given `remember`
        /// (a text under a key) and `recall` (the entries that best match a query). Each use is
        /// recorded, so replay sees what the agent saw; `stepwise memory NAME` shows them.
        #[serde(default)]
        memory: Option<String>,
        /// A JSON Schema the final answer must be a JSON value of.
        #[serde(default)]
        #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
        output_schema: Option<serde_json::Value>,
        #[serde(default)]
        temperature: Option<f64>,
        /// The longest reply of one turn, in tokens (default 1024).
        #[serde(default)]
        max_tokens: Option<u32>,
    },
    /// Summarize `text` with a model. Output as `prompt`'s, the summary in `text`.
    Summarize {
        model: String,
        text: String,
        /// What to focus on, or how to write it.
        #[serde(default)]
        instructions: Option<String>,
        #[serde(default)]
        max_words: Option<u32>,
        #[serde(default)]
        temperature: Option<f64>,
        #[serde(default)]
        max_tokens: Option<u32>,
    },
}

/// One message of a `prompt` step's conversation.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageDef {
    pub role: RoleDef,
    pub content: String,
}

/// Who says a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RoleDef {
    System,
    User,
    Assistant,
}

/// A run's budget as written.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BudgetDef {
    /// Dollars, e.g. `0.50`.
    #[serde(default)]
    pub usd: Option<f64>,
    /// Tokens, prompt and reply together.
    #[serde(default)]
    pub tokens: Option<u64>,
}

/// A command as written.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(
    untagged,
    expecting = "expected a command: a list of words (argv, each a string) or one shell line"
)]
pub enum CommandDef {
    Argv(Vec<String>),
    Shell(String),
}

/// Policy rules in a workflow or a policy file.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyDef {
    #[serde(default)]
    pub rules: Vec<RuleDef>,
}

/// One rule: exactly one of `allow`, `ask` or `deny`, naming the operation kind
/// (`edit_file`, `run_command`, `read_file` or `*`), narrowed by `path` globs or `command`
/// patterns. Deny beats ask beats allow.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleDef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ask: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deny: Option<String>,
    /// Glob(s) over workspace-relative paths, e.g. `docs/**`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<OneOrMany>,
    /// `mcp_call` rules: glob(s) over the tools of MCP servers, `SERVER.tool`, e.g.
    /// `files.read_*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<OneOrMany>,
    /// `mcp_call` rules: a glob per argument the call must match, e.g. `{path: "/srv/data/**"}`
    /// (an argument that is not a string is matched as its JSON text; a missing one does not
    /// match).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<std::collections::BTreeMap<String, String>>,
    /// Pattern(s) over the command, matched word by word: each word a glob over one word of
    /// the command, and a last word `*` alone matching any further words, e.g.
    /// `cargo test *`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<OneOrMany>,
    /// Environment variables the rule covers: `NAME` or `NAME=value-glob`. An `allow` rule
    /// approves only steps whose `env` (and leading `NAME=value` words) it covers entirely; a
    /// `deny` or `ask` rule matches steps that set one of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<OneOrMany>,
    /// Variables passed through from the engine's environment (`pass_env`), by name glob. An
    /// `allow` rule approves only steps whose `pass_env` it names entirely; a `deny` or `ask`
    /// rule matches steps that pass one of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pass_env: Option<OneOrMany>,
    /// `allow` only: also approve shell lines whose meaning depends on more than their words
    /// (redirections, `$(...)`, `$VARIABLES`, globs, grouping), which the rule cannot check.
    /// Off by default: such a line waits for a person.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unchecked_shell: bool,
}

/// A single string or a list of strings.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged, expecting = "expected a string or a list of strings")]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// The JSON Schema of the workflow format, as published in `workflow.schema.json`.
pub fn workflow_json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(WorkflowDef)).unwrap_or_default()
}
