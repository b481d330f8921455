//! A benchmark of the real app following a busy run (BENCHMARKS.md, "Following a busy run"):
//! a 10,000-step run whose last steps are commands committing about 100 events a second, shown
//! in the Run view while it streams. It measures the CPU the app's whole process tree uses
//! (WebKit's processes included) and how long each update takes from its newest event's commit
//! to the screen (the window's own record of it). A report, not a test: run it with
//! `cargo test ... -- --ignored app_live` and read what it prints (also written to
//! `$CARGO_TARGET_DIR/benchmarks/app-live.json`). `STEPWISE_APP_BINARY` names another build of
//! the app to measure (a release build, say).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::app::{LIVE, app_binary, app_env, wait_until};
use crate::support::Env;
use crate::webdriver::{Display, Driver, Session};

/// Pure steps first (they finish in seconds), then commands that pace the run.
const SET_STEPS: usize = 8_500;
const COMMAND_STEPS: usize = 1_500;
/// How long the app is measured while it follows the run.
const WINDOW: Duration = Duration::from_secs(20);

fn busy_workflow(env: &Env) -> PathBuf {
    let mut yaml = String::from("name: busy\nmax_parallel: 1\nsteps:\n");
    for i in 0..SET_STEPS + COMMAND_STEPS {
        let id = format!("s{i:05}");
        if i < SET_STEPS {
            let _ = write!(
                yaml,
                "  - id: {id}\n    type: set\n    values:\n      i: {i}\n"
            );
        } else if i == SET_STEPS {
            let _ = write!(
                yaml,
                "  - id: {id}\n    type: run_command\n    command: date +%s%N > t0 && touch commands\n"
            );
        } else {
            // Each command step records five events (its rule's approval among them), paced to one
            // step every 50 ms from the first command on: ~100 events a second, however fast
            // the engine is.
            let _ = write!(
                yaml,
                "  - id: {id}\n    type: run_command\n    command: sh pace.sh {}\n",
                i - SET_STEPS
            );
        }
        if i > 0 {
            let _ = writeln!(yaml, "    needs: [s{:05}]", i - 1);
        }
    }
    env.write(
        "pace.sh",
        "d=$(( $(cat t0) + $1 * 50000000 - $(date +%s%N) ))\n\
         if [ $d -gt 0 ]; then sleep $(awk -v d=$d 'BEGIN { printf \"%.3f\", d / 1e9 }'); fi\n",
    );
    env.workflow("busy.yaml", &yaml)
}

/// A process and all its descendants.
fn tree(root: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Some(ppid) = stat_field(pid, 1) {
            parents.push((pid, ppid as u32));
        }
    }
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        let parent = out[i];
        out.extend(
            parents
                .iter()
                .filter(|(_, p)| *p == parent)
                .map(|(c, _)| *c),
        );
        i += 1;
    }
    out
}

/// Field `n` (0-based, after the command name) of `/proc/PID/stat`.
fn stat_field(pid: u32, n: usize) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    rest.split_whitespace().nth(n)?.parse().ok()
}

/// CPU ticks (user + system) the processes have used so far.
fn ticks(pids: &[u32]) -> u64 {
    pids.iter()
        .map(|&pid| stat_field(pid, 11).unwrap_or(0) + stat_field(pid, 12).unwrap_or(0))
        .sum()
}

/// The app's process: the one running our binary.
fn app_pid(binary: &Path) -> Option<u32> {
    let want = binary.canonicalize().ok()?;
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_string_lossy().parse().ok()?;
            let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
            (exe == want).then_some(pid)
        })
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

#[test]
#[ignore = "a benchmark of the real app: run it with --ignored"]
fn app_live_bench_follows_a_busy_10000_step_run() {
    let env = Env::new();
    env.allow_everything();
    let workflow = busy_workflow(&env);
    let cli = env.spawn_run(&workflow);
    wait_until(
        "the run's commands to start",
        Duration::from_secs(300),
        || env.read("commands").is_some(),
    );
    let run = env.first_run_id(LIVE).expect("the run");

    let display = Display::start();
    let driver = Driver::start(&display, &app_env(&env));
    let binary = std::env::var_os("STEPWISE_APP_BINARY").map_or_else(app_binary, PathBuf::from);
    let window = Session::open(&driver, &binary);
    window.script("location.hash = '#/run/' + arguments[0];", vec![json!(run)]);
    window.wait_for_text("the run's timeline", Duration::from_secs(60), |t| {
        t.contains("busy") && t.contains("Steps 10,000")
    });
    // Let the first render and the first catch-up settle, then measure from a clean slate.
    std::thread::sleep(Duration::from_secs(3));
    window.script("if (window.__stepwise_latency__) { window.__stepwise_latency__.samples = []; window.__stepwise_latency__.next = 0; }", vec![]);
    let app = app_pid(&binary).expect("the app's process");
    let pids = tree(app);
    let events_before = env.event_count(Some(&run));
    let ticks_before = ticks(&pids);
    let per_process: Vec<(u32, u64)> = pids.iter().map(|&p| (p, ticks(&[p]))).collect();
    let started = Instant::now();
    std::thread::sleep(WINDOW);
    let elapsed = started.elapsed().as_secs_f64();
    let pids_after = tree(app);
    let ticks_after = ticks(&pids_after);
    let events_after = env.event_count(Some(&run));
    let samples = window.script(
        "return window.__stepwise_latency__ ? window.__stepwise_latency__.samples : [];",
        vec![],
    );
    // No screenshot: WebKitWebDriver's can hang with compositing off, as the app draws itself
    // without a GPU, and this measures the app as it chooses.
    cli.kill();

    let hz = 100.0; // USER_HZ on Linux
    let by_process: Vec<_> = pids_after
        .iter()
        .map(|&pid| {
            let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            let used = stat_field(pid, 11).unwrap_or(0) + stat_field(pid, 12).unwrap_or(0);
            let before = per_process.iter().find(|(p, _)| *p == pid).map_or(0, |(_, t)| *t);
            json!({"process": name.trim(), "cpu_percent": (used.saturating_sub(before)) as f64 / hz / elapsed * 100.0})
        })
        .collect();
    let cpu = (ticks_after.saturating_sub(ticks_before)) as f64 / hz / elapsed * 100.0;
    let mut latencies: Vec<f64> = samples
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_f64()).collect())
        .unwrap_or_default();
    latencies.sort_by(|a, b| a.total_cmp(b));
    let events_per_s = (events_after - events_before) as f64 / elapsed;
    let report = json!({
        "app": binary.display().to_string(),
        "window_s": elapsed,
        "events_per_s": events_per_s,
        "steps_in_run": SET_STEPS + COMMAND_STEPS,
        "processes": pids_after.len(),
        "cpu_percent_of_one_core": cpu,
        "by_process": by_process,
        "goal_cpu_percent": 25,
        "updates_shown": latencies.len(),
        "latency_ms": {
            "p50": percentile(&latencies, 0.5),
            "p95": percentile(&latencies, 0.95),
            "max": latencies.last().copied().unwrap_or(f64::NAN),
            "over_100": latencies.iter().filter(|&&l| l > 100.0).count(),
        },
        "goal_latency_ms": 100,
    });
    let text = serde_json::to_string_pretty(&report).unwrap_or_default();
    println!("{text}");
    if let Some(dir) = crate::support::binary()
        .parent()
        .and_then(Path::parent)
        .map(|t| t.join("benchmarks"))
    {
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::write(dir.join("app-live.json"), &text);
    }
}
