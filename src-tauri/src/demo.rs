//! The embedded defaults: on first start a demo workspace (the demo calculator project and the
//! example workflows) in the user's data directory, and the examples themselves, so that the
//! window has something to show and try with no set-up and no network.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use stepwise_engine::{Engine, StartRun};

/// The example workflows that come with the app (the repository's `workflows/`).
const EXAMPLES: &[(&str, &str)] = &[
    (
        "fix-and-test.yaml",
        include_str!("../../workflows/fix-and-test.yaml"),
    ),
    (
        "release-gate.yaml",
        include_str!("../../workflows/release-gate.yaml"),
    ),
    (
        "llm-factorial.yaml",
        include_str!("../../workflows/llm-factorial.yaml"),
    ),
    (
        "llm-triage.yaml",
        include_str!("../../workflows/llm-triage.yaml"),
    ),
    (
        "llm-plan.yaml",
        include_str!("../../workflows/llm-plan.yaml"),
    ),
];

/// The demo project the examples work on.
const DEMO_FILES: &[(&str, &str)] = &[
    ("calc.py", include_str!("../../workflows/demo/calc.py")),
    (
        "test_calc.py",
        include_str!("../../workflows/demo/test_calc.py"),
    ),
];

/// Where the defaults are.
pub struct Layout {
    pub workspace: PathBuf,
    pub examples: PathBuf,
    /// The workspace is the demo one (not one the person named).
    pub is_demo: bool,
}

/// Writes the examples (refreshed on every start) and, unless `workspace` names one, the demo
/// workspace if it does not exist yet.
pub fn lay_out(data_dir: &Path, workspace: Option<PathBuf>) -> anyhow::Result<Layout> {
    let examples = data_dir.join("examples");
    write_files(&examples, EXAMPLES)?;
    let (workspace, is_demo) = match workspace {
        Some(named) => (named, false),
        None => (data_dir.join("demo-workspace"), true),
    };
    if is_demo && !workspace.exists() {
        write_files(&workspace, DEMO_FILES)?;
        write_files(&workspace.join("workflows"), EXAMPLES)?;
    }
    std::fs::create_dir_all(&workspace)
        .with_context(|| format!("cannot create the workspace {}", workspace.display()))?;
    let workspace = workspace
        .canonicalize()
        .with_context(|| format!("cannot open the workspace {}", workspace.display()))?;
    Ok(Layout {
        workspace,
        examples,
        is_demo,
    })
}

fn write_files(dir: &Path, files: &[(&str, &str)]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// On a database with no runs at all, starts the fix-and-test example on the demo workspace:
/// it stops at its first edit, a waiting approval to try.
pub async fn seed_first_run(engine: &Engine, workspace: &Path) -> anyhow::Result<()> {
    if !engine.list_runs(1).await?.is_empty() {
        return Ok(());
    }
    let workflow = workspace.join("workflows").join("fix-and-test.yaml");
    if !workflow.exists() {
        return Ok(());
    }
    engine
        .start_run(StartRun {
            workflow_path: workflow,
            workspace: workspace.to_path_buf(),
            inputs: Default::default(),
            trigger: "app".into(),
            max_parallel: None,
            budget_micro_usd: None,
            pauses: Default::default(),
            cause: None,
        })
        .await?;
    Ok(())
}
