//! The real app's desktop notifications: the `stepwise-app` binary on a private D-Bus session
//! bus (a real dbus-daemon) with a real notification daemon (dunst) showing what it is asked
//! to, and dbus-monitor recording every call made to it.

use std::io::{BufRead as _, BufReader, Read as _};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::app::{LIVE, app_binary, app_env, wait_until};
use crate::examples::{copy_dir, example, workflows_dir};
use crate::support::Env;
use crate::webdriver::Display;

/// The bus, the daemon and the monitor, all stopped when dropped.
struct Desktop {
    processes: Vec<Child>,
    address: String,
    calls: Arc<Mutex<String>>,
}

impl Desktop {
    fn start(display: &Display) -> Desktop {
        let mut bus = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--print-address"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-daemon (apt-get install dbus-daemon)");
        let mut address = String::new();
        BufReader::new(bus.stdout.take().expect("piped"))
            .read_line(&mut address)
            .expect("the bus address");
        let address = address.trim().to_owned();
        let mut monitor = Command::new("dbus-monitor")
            .args([
                "--address",
                &address,
                "interface='org.freedesktop.Notifications'",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-monitor (apt-get install dbus-bin)");
        let calls = Arc::new(Mutex::new(String::new()));
        let mut out = monitor.stdout.take().expect("piped");
        let sink = calls.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = out.read(&mut chunk) {
                if n == 0 {
                    return;
                }
                let text = String::from_utf8_lossy(&chunk[..n]).into_owned();
                sink.lock().expect("lock").push_str(&text);
            }
        });
        let dunst = Command::new("dunst")
            .env("DISPLAY", &display.name)
            .env("DBUS_SESSION_BUS_ADDRESS", &address)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dunst (apt-get install dunst)");
        let desktop = Desktop {
            processes: vec![dunst, monitor, bus],
            address,
            calls,
        };
        // Up once the monitor has its name and the daemon answers.
        wait_until("dbus-monitor and dunst on the bus", LIVE, || {
            desktop.calls().contains("NameAcquired")
                && desktop.dunstctl(&["count", "displayed"]).is_some()
        });
        desktop
    }

    /// Every call to the notification service so far, as dbus-monitor printed them.
    fn calls(&self) -> String {
        self.calls.lock().expect("lock").clone()
    }

    /// The `Notify` calls so far, each as printed.
    fn notify_calls(&self) -> Vec<String> {
        self.calls()
            .split("member=Notify")
            .skip(1)
            .map(str::to_owned)
            .collect()
    }

    fn dunstctl(&self, args: &[&str]) -> Option<String> {
        let out = Command::new("dunstctl")
            .args(args)
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// The bodies of the notifications on screen (closing them, as dunst lists only the
    /// closed ones).
    fn close_and_read(&self) -> Vec<String> {
        self.dunstctl(&["close-all"]).expect("dunstctl close-all");
        let history: Value =
            serde_json::from_str(&self.dunstctl(&["history"]).expect("dunstctl history"))
                .expect("dunst's history is JSON");
        history["data"][0]
            .as_array()
            .map(|shown| {
                shown
                    .iter()
                    .filter_map(|n| n["body"]["data"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Desktop {
    fn drop(&mut self) {
        for child in &mut self.processes {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The real app on the test's display and private bus.
fn start_app(env: &Env, display: &Display, desktop: &Desktop) -> Child {
    Command::new(app_binary())
        .envs(app_env(env))
        .env("DISPLAY", &display.name)
        .env("DBUS_SESSION_BUS_ADDRESS", &desktop.address)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the app")
}

#[test]
fn a_question_arriving_while_the_window_is_in_the_background_raises_a_notification() {
    let env = Env::new();
    copy_dir(&workflows_dir().join("demo"), &env.ws);
    // The pointer sits in the middle of a screen twice the window's size: the window is not
    // the focused one.
    let display = Display::xvfb("2560x1600x24");
    let desktop = Desktop::start(&display);
    // Two runs wait before the window opens (questions that are not news then); the app takes
    // them over, so it is up once it holds them.
    let waiting: Vec<String> = (0..2)
        .map(|_| {
            let out = env.run(&example("fix-and-test.yaml"), &[]);
            assert_eq!(out.code, 3, "{out}");
            out.run_id()
        })
        .collect();
    let mut app = start_app(&env, &display, &desktop);
    let pid = app.id().to_string();
    wait_until("the app holding the waiting runs", LIVE, || {
        waiting.iter().all(|run| {
            env.show(run)["held_by"]
                .as_str()
                .is_some_and(|holder| holder.contains(&pid))
        })
    });

    // A run started from the CLI asks a question: the desktop is asked to show it.
    let out = env.run(&example("release-gate.yaml"), &[]);
    assert_eq!(out.code, 3, "{out}");
    wait_until("a notification of the new question", LIVE, || {
        let calls = desktop.calls();
        calls.contains("member=Notify")
            && calls.contains("Stepwise: approval needed")
            && calls.contains("release-gate: step `release_gate` waits for you")
    });
    let calls = desktop.notify_calls();
    assert_eq!(
        calls.len(),
        1,
        "only the new question is news, not the two waiting when the window opened:\n{calls:?}"
    );

    // The next question takes the first one's place on screen and says how many wait in all.
    let out = env.run(&example("release-gate.yaml"), &[]);
    assert_eq!(out.code, 3, "{out}");
    wait_until("a second notification with the count", LIVE, || {
        desktop.notify_calls().len() == 2
            && desktop
                .calls()
                .contains("release-gate: step `release_gate` waits for you (4 questions wait)")
    });
    let second = &desktop.notify_calls()[1];
    let replaces = second
        .lines()
        .find(|line| line.trim_start().starts_with("uint32"))
        .unwrap_or_default()
        .trim();
    assert!(
        replaces != "uint32 0" && !replaces.is_empty(),
        "the second notification replaces the first: {second}"
    );
    assert_eq!(
        desktop.dunstctl(&["count", "displayed"]).as_deref(),
        Some("1"),
        "one notification on screen"
    );
    assert_eq!(
        desktop.close_and_read(),
        vec!["release-gate: step `release_gate` waits for you (4 questions wait)".to_owned()],
        "what the notification daemon showed"
    );
    let _ = app.kill();
    let _ = app.wait();
}

#[test]
fn a_step_slower_than_its_alert_raises_a_notification() {
    let env = Env::new();
    env.allow_everything();
    let nap = env.workflow(
        "nap.yaml",
        "name: nap\nsteps:\n  - id: nap\n    type: run_command\n    command: [\"sleep\", \"3\"]\n    alert: {slower_than: 1s}\n",
    );
    let display = Display::xvfb("2560x1600x24");
    let desktop = Desktop::start(&display);
    let mut app = start_app(&env, &display, &desktop);
    // The app is set up once it has made its API token (its feeds start beside it).
    wait_until("the app to start", LIVE, || {
        env.root().join("run").join("token").exists()
    });
    std::thread::sleep(std::time::Duration::from_millis(500));

    // A run the CLI drives: its step goes on past its alert, and the app says so.
    let out = env.run(&nap, &[]);
    assert_eq!(out.code, 0, "{out}");
    wait_until("a notification of the slow step", LIVE, || {
        let calls = desktop.calls();
        calls.contains("Stepwise: slower than expected")
            && calls.contains("nap: step `nap` has been going for longer than 1s")
    });
    assert_eq!(
        desktop.notify_calls().len(),
        1,
        "{:?}",
        desktop.notify_calls()
    );
    let _ = app.kill();
    let _ = app.wait();
}
