//! Triggers and signals in the real app window: the app watches its workspace's triggers (a
//! file created starts a run, listed with "started by"), a run waiting for a signal shows
//! which and takes one sent from the step's form, and with its window closed the app goes on
//! watching from the tray.

use std::time::Duration;

use serde_json::json;

use crate::app::{LIVE, app_binary, app_env, wait_until};
use crate::support::{Env, step};
use crate::webdriver::{Display, Driver, Session};

/// The mapped top-level windows titled `title` on `display`.
fn windows_titled(display: &str, title: &str) -> (impl x11rb::connection::Connection, Vec<u32>) {
    use x11rb::connection::Connection as _;
    use x11rb::protocol::xproto::{AtomEnum, ConnectionExt as _, MapState};
    let (conn, screen) = x11rb::connect(Some(display)).expect("connect to the X display");
    let root = conn.setup().roots[screen].root;
    let children = conn
        .query_tree(root)
        .expect("query the windows")
        .reply()
        .expect("the windows")
        .children;
    let mut found = Vec::new();
    for window in children {
        let name = conn
            .get_property(false, window, AtomEnum::WM_NAME, AtomEnum::ANY, 0, 256)
            .ok()
            .and_then(|cookie| cookie.reply().ok())
            .map(|reply| reply.value)
            .unwrap_or_default();
        let mapped = conn
            .get_window_attributes(window)
            .ok()
            .and_then(|cookie| cookie.reply().ok())
            .is_some_and(|attributes| attributes.map_state == MapState::VIEWABLE);
        if mapped && name == title.as_bytes() {
            found.push(window);
        }
    }
    (conn, found)
}

fn visible_windows(display: &str, title: &str) -> usize {
    windows_titled(display, title).1.len()
}

/// Sends each window titled `title` the `WM_DELETE_WINDOW` message a window manager sends when
/// its close button is clicked; how many were asked.
fn close_like_a_window_manager(display: &str, title: &str) -> usize {
    use x11rb::connection::Connection as _;
    use x11rb::protocol::xproto::{ClientMessageEvent, ConnectionExt as _, EventMask};
    let (conn, windows) = windows_titled(display, title);
    let atom = |name: &[u8]| {
        conn.intern_atom(false, name)
            .expect("intern an atom")
            .reply()
            .expect("an atom")
            .atom
    };
    let (protocols, delete) = (atom(b"WM_PROTOCOLS"), atom(b"WM_DELETE_WINDOW"));
    for &window in &windows {
        let message = ClientMessageEvent::new(32, window, protocols, [delete, 0, 0, 0, 0]);
        conn.send_event(false, window, EventMask::NO_EVENT, message)
            .expect("send the close message");
    }
    conn.flush().expect("flush");
    windows.len()
}

const ON_CHANGE: &str = r#"name: on-change
on:
  files:
    paths: ["src/**"]
    debounce: 300ms
steps:
  - id: note
    type: set
    values: {ok: true}
"#;

const RELEASE_WAIT: &str = "name: release-wait
steps:
  - id: deployed
    type: wait_signal
    name: deploy/done
    timeout: 5m
  - id: smoke
    needs: [deployed]
    type: set
    values:
      version: ${steps.deployed.output.version}
";

fn run_caused_by(env: &Env, cause: &str) -> Option<String> {
    env.runs()
        .iter()
        .find(|run| run["cause"] == json!(cause))
        .and_then(|run| run["run_id"].as_str().map(str::to_string))
}

#[test]
fn the_app_starts_triggered_runs_takes_a_signal_from_its_form_and_watches_from_the_tray() {
    let env = Env::new();
    env.write("workflows/on-change.yaml", ON_CHANGE);
    let release = env.workflow("release-wait.yaml", RELEASE_WAIT);

    let display = Display::start();
    let driver = Driver::start(&display, &app_env(&env));
    let window = Session::open(&driver, &app_binary());
    window.script("location.hash = '#/runs';", vec![]);
    window.wait_for_text("the runs view", LIVE, |t| t.contains("Runs"));
    // Two `stepwise watch` on the same workspace and database besides the app: still one run
    // per change.
    let ws = env.ws.display().to_string();
    let watchers: Vec<_> = (0..2)
        .map(|_| {
            let (watch, lines) = env.spawn_piped(&["watch", "--workspace", &ws, "--json"]);
            lines
                .until(LIVE, |line| line.contains(r#""event":"watching""#))
                .expect("the watcher reports what it watches");
            (watch, lines)
        })
        .collect();

    // A file created in the workspace: the app's watcher starts one run, listed with its cause.
    // (The app watches from shortly after it starts: a file made before that is there already,
    // and is made again until the watcher sees it.)
    let deadline = std::time::Instant::now() + LIVE;
    for attempt in 0.. {
        let _ = std::fs::remove_file(env.ws.join("src/a.txt"));
        env.write("src/a.txt", &format!("hello {attempt}"));
        std::thread::sleep(Duration::from_secs(2));
        if run_caused_by(&env, "create src/a.txt").is_some() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no run started by the new file"
        );
    }
    window.wait_for_text("the run with what started it", LIVE, |t| {
        t.contains("started by: create src/a.txt")
    });

    // A run that waits for a signal (driven by the CLI): its step names the signal, and the
    // form sends one, whose data is the step's output.
    let waiting = env.spawn(&["run", release.to_str().expect("utf-8")]);
    wait_until("the run to wait for its signal", LIVE, || {
        env.runs()
            .iter()
            .find(|run| run["workflow_name"] == "release-wait")
            .and_then(|run| run["run_id"].as_str())
            .is_some_and(|run| step(&env.show(run), "deployed")["status"] == "running")
    });
    let run = env
        .runs()
        .iter()
        .find(|run| run["workflow_name"] == "release-wait")
        .and_then(|run| run["run_id"].as_str().map(str::to_string))
        .expect("the waiting run");
    window.script(
        "location.hash = '#/run/' + arguments[0] + '?step=deployed';",
        vec![json!(run)],
    );
    window.wait_for_text("the step waiting for its signal", LIVE, |t| {
        t.contains("Waits for signal deploy/done")
    });
    window.script(
        "const form = document.querySelector('[data-testid=signal-form]'); \
         const data = form.querySelector('[name=data]'); \
         data.value = '{\"version\": \"4.5.6\"}'; \
         data.dispatchEvent(new Event('input', {bubbles: true}));",
        vec![],
    );
    window.click("Send signal");
    wait_until("the run to take the signal and finish", LIVE, || {
        env.show(&run)["status"] == "succeeded"
    });
    assert_eq!(
        step(&env.show(&run), "smoke")["output"],
        json!({"version": "4.5.6"})
    );
    let out = waiting.finish(LIVE);
    assert_eq!(out.code, 0, "{out}");

    let created = env
        .runs()
        .iter()
        .filter(|run| run["cause"] == json!("create src/a.txt"))
        .count();
    assert_eq!(
        created, 1,
        "one run for the new file, the app and two watchers watching"
    );
    drop(watchers);

    // The window closed: the app goes on in the tray, and a change still starts a run.
    // (WebDriver's Close Window would end the session and the app with it: the window manager's
    // way is what a person's click on the close button does.)
    let closed = close_like_a_window_manager(&display.name, "Stepwise");
    assert_eq!(closed, 1, "one window titled Stepwise was asked to close");
    // Under load, about one close in five sent this way (no window manager runs under Xvfb)
    // is not acted on at all: no close request reaches the app. A person clicks again; so does
    // the test, at most twice more (see the note of stop 32: not understood yet).
    for _ in 0..2 {
        let hidden = (0..30).any(|_| {
            std::thread::sleep(Duration::from_millis(100));
            visible_windows(&display.name, "Stepwise") == 0
        });
        if hidden {
            break;
        }
        close_like_a_window_manager(&display.name, "Stepwise");
    }
    wait_until("the window to be hidden", LIVE, || {
        visible_windows(&display.name, "Stepwise") == 0
    });
    env.write("src/b.txt", "after the window closed");
    wait_until(
        "a run started while the window is closed",
        Duration::from_secs(5),
        || run_caused_by(&env, "create src/b.txt").is_some(),
    );
}
