//! The real app end to end: the `stepwise-app` binary (self-contained, UI embedded) in a real
//! window under Xvfb, driven through tauri-driver and WebKitWebDriver, on a temp database and
//! workspace shared with the real `stepwise` CLI. Screenshots of each main view are saved to
//! `target/app-screenshots/`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::examples::{copy_dir, example, workflows_dir};
use crate::support::{Env, step};
use crate::webdriver::{Display, Driver, Session};

const ENTER: &str = "\u{E007}";
pub(crate) const LIVE: Duration = Duration::from_secs(10);

pub(crate) fn app_binary() -> PathBuf {
    let cli = crate::support::binary();
    let app = cli.with_file_name(format!("stepwise-app{}", std::env::consts::EXE_SUFFIX));
    assert!(
        app.exists(),
        "{} does not exist; build it first: cargo build -p stepwise-app",
        app.display()
    );
    app
}

fn screenshots() -> PathBuf {
    let cli = crate::support::binary();
    cli.parent()
        .and_then(Path::parent)
        .map(|target| target.join("app-screenshots"))
        .expect("the target directory")
}

/// Waits until `check` holds, for things outside the window (files, the log).
pub(crate) fn wait_until(what: &str, limit: Duration, check: impl Fn() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < limit, "waited {limit:?} for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The app's environment: the test's database, workspace and config, its own data directory.
pub(crate) fn app_env(env: &Env) -> Vec<(String, String)> {
    let root = env.root();
    vec![
        (
            "STEPWISE_DB".into(),
            env.database.name().to_string_lossy().into_owned(),
        ),
        ("STEPWISE_WORKSPACE".into(), env.ws.display().to_string()),
        (
            "XDG_CONFIG_HOME".into(),
            root.join("config").display().to_string(),
        ),
        (
            "XDG_DATA_HOME".into(),
            root.join("data").display().to_string(),
        ),
        // The app serves the local API: on any free port, its token in the test's own
        // directory.
        ("STEPWISE_API_PORT".into(), "0".into()),
        (
            "STEPWISE_TOKEN_FILE".into(),
            root.join("run").join("token").display().to_string(),
        ),
    ]
}

/// Finds texts drawn over other texts, or out of their boxes, in the window as it is (its
/// default size, 1000×700): the browser tests' check (`ui/tests/browser/overlap.js`), here with
/// WebKit's own fonts.
fn no_text_over_text(window: &Session, view: &str) {
    const OVERLAP: &str = include_str!("../../ui/tests/browser/overlap.js");
    let found = window.script(&format!("return ({OVERLAP})();"), vec![]);
    assert_eq!(
        found,
        json!([]),
        "{view}: text drawn over other text or out of its box"
    );
}

#[test]
fn the_window_approves_rejects_and_follows_runs_shared_with_the_cli() {
    let env = Env::new();
    copy_dir(&workflows_dir().join("demo"), &env.ws);
    std::fs::create_dir_all(env.ws.join("workflows")).expect("the workspace's workflows/");
    std::fs::copy(
        example("release-gate.yaml"),
        env.ws.join("workflows").join("release-gate.yaml"),
    )
    .expect("copy a workflow into the workspace");
    let shots = screenshots();

    // A run started from the CLI waits for its edit.
    let out = env.run(&example("fix-and-test.yaml"), &[]);
    assert_eq!(out.code, 3, "{out}");
    let run = out.run_id();

    let display = Display::start();
    // This test takes screenshots of every view, which WebKitWebDriver cannot do with
    // accelerated compositing off (the app's default without a GPU, as under Xvfb: the
    // screenshot request never returns); the other window tests run with the default.
    let mut vars = app_env(&env);
    vars.push(("STEPWISE_GPU_COMPOSITING".into(), "1".into()));
    let driver = Driver::start(&display, &vars);
    let window = Session::open(&driver, &app_binary());

    // The webview may call the app's own commands only: Tauri's built-in commands, which every
    // app has, are refused (the capability grants none of them).
    for command in ["plugin:app|version", "plugin:path|resolve_directory"] {
        let refused = window.script_async(
            "const [command, done] = arguments; \
             window.__TAURI_INTERNALS__.invoke(command, { directory: 1 }) \
               .then(() => done('allowed'), (e) => done('refused: ' + e));",
            vec![json!(command)],
        );
        assert!(
            refused
                .as_str()
                .is_some_and(|r| r.starts_with("refused") && r.contains("not allowed")),
            "{command}: {refused}"
        );
    }

    // Approvals shows the edit's diff; `a` lands it on disk.
    window.click("Approvals");
    window.wait_for_text("the edit's diff", LIVE, |t| {
        t.contains("add_factorial") && t.contains("def factorial(n):")
    });
    window.screenshot(&shots.join("approvals.png"));
    no_text_over_text(&window, "approvals");

    // The file changes outside while the edit waits: the proposal goes stale, and the window
    // says so and shows the fresh one, made against the file as it is now.
    let calc = env.read("calc.py").expect("calc.py");
    env.write("calc.py", &format!("{calc}\n# changed outside\n"));
    window.wait_for_text("the stale notice and the fresh proposal", LIVE, |t| {
        t.contains("stale — replaced by a fresh proposal") && t.contains("# changed outside")
    });
    window.screenshot(&shots.join("approvals-stale.png"));
    no_text_over_text(&window, "approvals-stale");
    window.keys("a");
    wait_until("the approved fresh edit on disk", LIVE, || {
        env.read("calc.py")
            .is_some_and(|c| c.contains("def factorial(n):") && c.contains("# changed outside"))
    });

    // The two commands then wait; `r`, a reason and Enter reject the selected one.
    window.wait_for_text("the commands' proposals", LIVE, |t| {
        t.contains("python3") || t.contains("wc -l")
    });
    window.keys("r");
    window.keys("not on my machine");
    window.keys(ENTER);
    wait_until("the rejection in the log", LIVE, || {
        let show = env.show(&run);
        ["test", "count_lines"]
            .iter()
            .any(|id| step(&show, id)["status"] == "rejected")
    });

    // The run shows the reason.
    window.click("Runs");
    window.wait_for_text("the run in the list", LIVE, |t| t.contains("fix-and-test"));
    window.screenshot(&shots.join("runs.png"));
    no_text_over_text(&window, "runs");
    window.script(
        "const id = arguments[0]; \
         const row = [...document.querySelectorAll('[data-run]')].find(e => e.dataset.run === id); \
         if (row) row.click();",
        vec![json!(run)],
    );
    window.wait_for_text("the reason in the run", LIVE, |t| {
        t.contains("not on my machine")
    });
    window.screenshot(&shots.join("run.png"));
    no_text_over_text(&window, "run");

    // A second run started from the CLI appears live.
    window.click("Runs");
    let second = env.run(&example("release-gate.yaml"), &[]);
    assert_eq!(second.code, 3, "{second}");
    window.wait_for_text("the second run, live", LIVE, |t| t.contains("release-gate"));

    // A file changed outside shows in Workspace.
    window.click("Workspace");
    window.wait_for_text("the workspace tree", LIVE, |t| t.contains("calc.py"));
    env.write("notes-from-outside.txt", "hello\n");
    window.wait_for_text("the new file", LIVE, |t| {
        t.contains("notes-from-outside.txt")
    });
    window.screenshot(&shots.join("workspace.png"));
    no_text_over_text(&window, "workspace");

    window.click("Cost");
    window.wait_for_text("the cost view", LIVE, |t| t.contains("Cost"));
    window.screenshot(&shots.join("cost.png"));
    no_text_over_text(&window, "cost");

    // A run started from the Workflows view runs to its approval.
    window.click("Workflows");
    window.wait_for_text("the workflows", LIVE, |t| t.contains("release-gate"));
    window.screenshot(&shots.join("workflows.png"));
    no_text_over_text(&window, "workflows");
    let runs_before = env.run_count();
    let ws_workflow = env.ws.join("workflows").join("release-gate.yaml");
    let picked = window.script(
        "const path = arguments[0]; \
         const item = [...document.querySelectorAll('[data-testid=workflow]')].find(c => c.dataset.path === path); \
         if (!item) return false; item.querySelector('button.pick').click(); return true;",
        vec![json!(ws_workflow.display().to_string())],
    );
    assert_eq!(
        picked,
        json!(true),
        "no {} in Workflows:\n{}",
        ws_workflow.display(),
        window.text()
    );
    window.click("Start run");
    wait_until("a run started from the window", LIVE, || {
        env.run_count() > runs_before
    });
    wait_until("the window's run waiting at its gate", LIVE, || {
        let gates = env
            .approvals()
            .iter()
            .filter(|a| a["step"] == "release_gate")
            .count();
        gates == 2
    });

    // The reverse of the above: the window's run is driven by the app, and an approval from
    // the CLI reaches it through the run's inbox; the window then shows the next question.
    let window_run = env
        .approvals()
        .iter()
        .filter(|a| a["step"] == "release_gate")
        .filter_map(|a| a["run_id"].as_str().map(str::to_string))
        .find(|id| *id != second.run_id())
        .expect("the window's run");
    let approved = env.approve(&window_run, "release_gate", &["--no-wait"]);
    assert_eq!(approved.code, 0, "{approved}");
    window.click("Approvals");
    window.wait_for_text("the window's run asking for its edit", LIVE, |t| {
        t.contains("write_release") && t.contains("RELEASE.txt")
    });
}

#[test]
fn the_app_says_why_it_cannot_start_instead_of_panicking() {
    let env = Env::new();
    let headless = std::process::Command::new(app_binary())
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .envs(app_env(&env))
        .output()
        .expect("start the app");
    let stderr = String::from_utf8_lossy(&headless.stderr);
    assert_eq!(headless.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no display"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    // A database that cannot be opened (here a directory) is named, in words.
    std::fs::create_dir_all(&env.db).expect("a directory where the database should be");
    let display = Display::start();
    let broken = std::process::Command::new(app_binary())
        .envs(app_env(&env))
        .env("DISPLAY", &display.name)
        .output()
        .expect("start the app");
    let stderr = String::from_utf8_lossy(&broken.stderr);
    assert_eq!(broken.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&env.db.display().to_string()), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    // The app reads the same variables as the CLI, STEPWISE_SYNC included (through the
    // engine's one reader): a value it cannot mean is refused, naming the variable.
    let env = Env::new();
    let bad_sync = std::process::Command::new(app_binary())
        .envs(app_env(&env))
        .env("DISPLAY", &display.name)
        .env("STEPWISE_SYNC", "sometimes")
        .output()
        .expect("start the app");
    let stderr = String::from_utf8_lossy(&bad_sync.stderr);
    assert_eq!(bad_sync.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("STEPWISE_SYNC is `sometimes`"), "{stderr}");
}
