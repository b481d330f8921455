//! The local API served by the real app (on by default): a run a script starts over HTTP is
//! in the window at once, and the app drives it; the settings turn the server off.

use std::time::Duration;

use serde_json::json;

use crate::api_client::Api;
use crate::app::{LIVE, app_binary, app_env, wait_until};
use crate::support::Env;
use crate::webdriver::{Display, Driver, Session};

/// A port nobody listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

#[test]
fn a_run_started_over_the_apps_api_is_in_its_window_at_once() {
    let env = Env::new();
    env.write(
        "workflows/from-script.yaml",
        "name: from-script\nsteps:\n  - id: ask\n    type: edit_file\n    path: made-by-api.txt\n    content: \"hello\\n\"\n",
    );
    // Any free port (`app_env` asks for 0): where the app listens is read from the `api.json`
    // it writes beside its token, as an editor finds it; a port picked here and let go could be
    // taken by another test's process before the app binds it.
    let vars = app_env(&env);
    let token_file = env.root().join("run").join("token");
    let address_file = token_file.with_file_name("api.json");

    let display = Display::start();
    let driver = Driver::start(&display, &vars);
    let window = Session::open(&driver, &app_binary());
    window.script("location.hash = '#/runs';", vec![]);
    window.wait_for_text("the runs view", LIVE, |t| t.contains("Runs"));
    wait_until(
        "the app to make its API token and say where it listens",
        LIVE,
        || token_file.exists() && address_file.exists(),
    );
    let token = std::fs::read_to_string(&token_file).expect("the token");
    let address: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&address_file).expect("api.json"))
            .expect("api.json is JSON");
    let url = address["url"]
        .as_str()
        .expect("a url")
        .trim_end_matches('/');
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let api = Api::new(url, Some(token.trim()));

    let started = api.post("/v1/runs", json!({"path": "workflows/from-script.yaml"}));
    assert_eq!(started.status, 201, "{}", started.body);
    let run = started.body["run_id"].as_str().expect("run_id").to_string();
    // In the window at once, waiting for a person, driven by the app.
    window.wait_for_text("the run started over HTTP", Duration::from_secs(5), |t| {
        t.contains("from-script")
    });
    let listed = api.get("/v1/runs");
    assert_eq!(
        listed.body["runs"][0]["status"], "awaiting_approval",
        "{}",
        listed.body
    );
    assert!(
        listed.body["runs"][0]["held_by"]
            .as_str()
            .is_some_and(|holder| holder.contains("pid")),
        "{}",
        listed.body
    );
    // Approved from the window's inbox, over the run the script started.
    window.script(
        "location.hash = '#/approvals?run=' + arguments[0] + '&step=ask';",
        vec![json!(run)],
    );
    window.wait_for_text("the edit's question in the inbox", LIVE, |t| {
        t.contains("made-by-api.txt") && t.contains("Approve")
    });
    window.click("Approve");
    wait_until("the run to finish", LIVE, || {
        api.get(&format!("/v1/runs/{run}")).body["run"]["status"] == "succeeded"
    });
    assert_eq!(env.read("made-by-api.txt").as_deref(), Some("hello\n"));
}

#[test]
fn the_settings_turn_the_apps_api_off() {
    let env = Env::new();
    std::fs::write(
        env.root()
            .join("config")
            .join("stepwise")
            .join("settings.yaml"),
        "api:\n  serve: false\n",
    )
    .expect("write the settings");
    let port = free_port();
    let mut vars = app_env(&env);
    vars.retain(|(name, _)| name != "STEPWISE_API_PORT");
    vars.push(("STEPWISE_API_PORT".into(), port.to_string()));
    let display = Display::start();
    let driver = Driver::start(&display, &vars);
    let window = Session::open(&driver, &app_binary());
    window.script("location.hash = '#/runs';", vec![]);
    window.wait_for_text("the runs view", LIVE, |t| t.contains("Runs"));
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the app serves the API though the settings say not to"
    );
    assert!(!env.root().join("run").join("token").exists());
}
