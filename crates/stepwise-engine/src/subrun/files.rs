//! The workflow files a workflow's `workflow` steps run: found (next to the calling file,
//! else in the workspace's `workflows/`), read, checked (their inputs against what the step
//! gives), and gathered with the files they run in turn, so that a run records them all when
//! it starts. A file that runs itself, through any chain, is refused here, with the chain.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use stepwise_core::custom_step::{RecordedStepType, StepTypes};
use stepwise_core::subrun::{MAX_DEPTH, MAX_FILES, SubWorkflow};
use stepwise_core::workflow::{Action, Step, ValidationError, Workflow, parse_workflow_with};

/// What a run records of the files its workflow uses besides itself.
#[derive(Debug, Clone, Default)]
pub(crate) struct Gathered {
    /// The workflow files its `workflow` steps run, by `path` as written.
    pub(crate) subworkflows: BTreeMap<String, SubWorkflow>,
    /// The manifests of the custom step types it and those files use.
    pub(crate) step_types: Vec<RecordedStepType>,
}

/// Gathers what `workflow` (read from `file`, its custom steps from `step_types`) runs, or
/// every problem found, each at the step that names the file.
pub(crate) fn gather(
    workflow: &Workflow,
    file: &Path,
    workspace: Option<&Path>,
    step_types: &StepTypes,
) -> Result<Gathered, Vec<ValidationError>> {
    let mut gatherer = Gatherer {
        workspace,
        step_types,
        used: BTreeMap::new(),
        chain: vec![identity(file)],
        files: 0,
        bytes: 0,
        errors: Vec::new(),
    };
    let subworkflows = gatherer.gather(workflow, file);
    if gatherer.errors.is_empty() {
        Ok(Gathered {
            subworkflows,
            step_types: gatherer.used.into_values().collect(),
        })
    } else {
        Err(gatherer.errors)
    }
}

/// The most the workflow files one run uses may hold, its children's included (they are
/// recorded in its first event).
const MAX_TOTAL_BYTES: usize = 16 * 1024 * 1024;

struct Gatherer<'a> {
    workspace: Option<&'a Path>,
    step_types: &'a StepTypes,
    /// The manifests the files gathered so far use, by name.
    used: BTreeMap<String, RecordedStepType>,
    /// The files from the top one down to the one being gathered.
    chain: Vec<PathBuf>,
    files: usize,
    /// The bytes of the files gathered so far (each time it is named).
    bytes: usize,
    errors: Vec<ValidationError>,
}

impl Gatherer<'_> {
    fn gather(&mut self, workflow: &Workflow, file: &Path) -> BTreeMap<String, SubWorkflow> {
        for manifest in workflow.custom_step_types() {
            self.used
                .entry(manifest.name.clone())
                .or_insert_with(|| manifest.recorded());
        }
        let mut gathered = BTreeMap::new();
        for step in &workflow.steps {
            let Action::Workflow { path, .. } = &step.action else {
                continue;
            };
            if gathered.contains_key(path) {
                continue;
            }
            if let Some(sub) = self.one(step, path, file) {
                gathered.insert(path.clone(), sub);
            }
        }
        gathered
    }

    fn one(&mut self, step: &Step, path: &str, file: &Path) -> Option<SubWorkflow> {
        let error = |message: String| ValidationError {
            file: file.display().to_string(),
            line: step.line,
            column: 1,
            step: Some(step.id.to_string()),
            message,
        };
        let Some(found) = find(path, file, self.workspace) else {
            let mut looked = vec![format!(
                "next to this file ({})",
                beside(file, path).display()
            )];
            if let Some(workspace) = self.workspace {
                looked.push(format!(
                    "in the workspace's workflows/ ({})",
                    workspace.join("workflows").join(path).display()
                ));
            }
            self.errors.push(error(format!(
                "`path`: no workflow file `{path}` {}",
                looked.join(" or ")
            )));
            return None;
        };
        let id = identity(&found);
        if let Some(at) = self.chain.iter().position(|f| *f == id) {
            let mut names: Vec<String> = self.chain[at..]
                .iter()
                .map(|f| f.display().to_string())
                .collect();
            names.push(id.display().to_string());
            self.errors.push(error(format!(
                "`path`: `{path}` would run itself: {}",
                names.join(" → ")
            )));
            return None;
        }
        if self.chain.len() > MAX_DEPTH as usize {
            self.errors.push(error(format!(
                "`path`: `{path}` would nest workflows more than {MAX_DEPTH} deep"
            )));
            return None;
        }
        self.files += 1;
        if self.files > MAX_FILES || self.bytes > MAX_TOTAL_BYTES {
            self.errors.push(error(format!(
                "`path`: a run may use at most {MAX_FILES} workflow files, its children's included"
            )));
            return None;
        }
        let source = match crate::workflow_file::read(&found) {
            Ok(source) => {
                self.bytes += source.len();
                if self.bytes > MAX_TOTAL_BYTES {
                    self.errors.push(error(format!(
                        "`path`: the workflow files a run uses may hold at most {} MiB in all, its children's included",
                        MAX_TOTAL_BYTES / (1024 * 1024)
                    )));
                    return None;
                }
                source
            }
            Err(problem) => {
                self.errors.push(error(format!(
                    "`path`: {}: {}",
                    found.display(),
                    problem.message
                )));
                return None;
            }
        };
        let child =
            match parse_workflow_with(&found.display().to_string(), &source, self.step_types) {
                Ok(child) => child,
                Err(errors) => {
                    self.errors.push(error(format!(
                        "`path`: `{path}` is not a valid workflow ({} problem{} below)",
                        errors.0.len(),
                        if errors.0.len() == 1 { "" } else { "s" }
                    )));
                    self.errors.extend(errors.0);
                    return None;
                }
            };
        self.check_inputs(step, path, &child, &error);
        self.chain.push(id);
        let subworkflows = self.gather(&child, &found);
        self.chain.pop();
        Some(SubWorkflow {
            path: found.display().to_string(),
            source,
            subworkflows,
        })
    }

    /// The step gives only inputs the file declares, and every one it requires.
    fn check_inputs(
        &mut self,
        step: &Step,
        path: &str,
        child: &Workflow,
        error: &dyn Fn(String) -> ValidationError,
    ) {
        let Action::Workflow { inputs, .. } = &step.action else {
            return;
        };
        for name in inputs.keys() {
            if !child.inputs.contains_key(name) {
                let declared: Vec<&str> = child.inputs.keys().map(String::as_str).collect();
                let declared = if declared.is_empty() {
                    "none".to_string()
                } else {
                    declared.join(", ")
                };
                self.errors.push(error(format!(
                    "`inputs`: `{path}` has no input `{name}` (it declares: {declared})"
                )));
            }
        }
        for (name, def) in &child.inputs {
            if def.default.is_none() && !inputs.contains_key(name) {
                self.errors.push(error(format!(
                    "`inputs`: `{path}` requires input `{name}`, which the step does not give"
                )));
            }
        }
    }
}

/// The file `path` names: next to the calling file, else in the workspace's `workflows/`.
fn find(path: &str, file: &Path, workspace: Option<&Path>) -> Option<PathBuf> {
    let mut candidates = vec![beside(file, path)];
    if let Some(workspace) = workspace {
        candidates.push(workspace.join("workflows").join(path));
    }
    candidates.into_iter().find(|c| c.is_file())
}

fn beside(file: &Path, path: &str) -> PathBuf {
    file.parent().unwrap_or(Path::new(".")).join(path)
}

/// What makes two names of a file the same file (a symlink, `..`).
fn identity(file: &Path) -> PathBuf {
    std::fs::canonicalize(file)
        .or_else(|_| std::path::absolute(file))
        .unwrap_or_else(|_| file.to_path_buf())
}
