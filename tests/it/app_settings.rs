//! The window's Settings view: a PostgreSQL connection is tested against a real server (a role
//! that must give a password, the password from the variable the form names), a URL holding a
//! password is refused before anything is kept, and what is saved is a settings file the CLI
//! then connects with: the URL and the variable's name, never the password.

use serde_json::json;

use crate::app::{LIVE, app_binary, app_env};
use crate::support::Env;
use crate::webdriver::{Display, Driver, Session};

fn fill(window: &Session, name: &str, value: &str) {
    window.script(
        "const field = document.querySelector('[data-testid=database-form] [name=' + arguments[0] + ']'); \
         field.value = arguments[1]; \
         field.dispatchEvent(new Event('input', {bubbles: true}));",
        vec![json!(name), json!(value)],
    );
}

#[test]
fn the_settings_view_tests_and_keeps_a_postgresql_connection_without_its_password() {
    let Some(admin) = crate::backend::admin_url() else {
        return;
    };
    let (Ok(pw_url), Ok(password)) = (
        std::env::var("STEPWISE_TEST_PG_PW_URL"),
        std::env::var("STEPWISE_TEST_PG_PASSWORD"),
    ) else {
        panic!("the test cluster's password role is not named (scripts/pg-cluster.sh env)");
    };
    // A database of the password role's own, so that stepwise may make its tables there.
    let name = format!("stepwise_it_settings_{}", std::process::id());
    let mut client =
        postgres::Client::connect(&admin, postgres::NoTls).expect("connect to the test server");
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
        .expect("drop a database left behind");
    client
        .batch_execute(&format!("CREATE DATABASE {name} OWNER stepwise_pw"))
        .expect("create the database");
    let url = crate::backend::with_database(&pw_url, &name);

    let env = Env::new();
    let settings = env
        .root()
        .join("config")
        .join("stepwise")
        .join("settings.yaml");
    let mut vars = app_env(&env);
    vars.push(("TEAM_DB_PASSWORD".into(), password.clone()));
    let display = Display::start();
    let app = Driver::start(&display, &vars);
    let window = Session::open(&app, &app_binary());
    window.script("location.hash = '#/settings';", vec![]);
    window.wait_for_text("the settings view", LIVE, |t| t.contains("PostgreSQL URL"));

    // A password in the URL is refused, and nothing is written.
    let with_password = url.replacen("stepwise_pw@", "stepwise_pw:hunter2@", 1);
    fill(&window, "url", &with_password);
    window.click("Save");
    window.wait_for_text("the refusal", LIVE, |t| t.contains("holds a password"));
    assert!(!settings.exists(), "nothing was kept");
    assert!(!window.text().contains("hunter2"), "{}", window.text());

    // The real connection, its password from the variable the form names.
    fill(&window, "url", &url);
    fill(&window, "password_env", "TEAM_DB_PASSWORD");
    window.click("Test connection");
    window.wait_for_text("the connection answering", LIVE, |t| {
        t.contains("Connected to") && t.contains("has not used it yet")
    });
    window.click("Save");
    window.wait_for_text("the connection kept", LIVE, |t| {
        t.contains("Restart Stepwise to use it")
    });
    let kept = std::fs::read_to_string(&settings).expect("the settings file");
    assert!(kept.contains(&url), "{kept}");
    assert!(
        kept.contains("password_env: \"TEAM_DB_PASSWORD\""),
        "{kept}"
    );
    assert!(
        !kept.contains(&password),
        "the password is never kept: {kept}"
    );

    // The CLI, named no database, connects with what was kept.
    let out = env
        .command(&["runs", "--json"])
        .env_remove("STEPWISE_DB")
        .env("TEAM_DB_PASSWORD", &password)
        .output()
        .expect("run stepwise");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let made: bool = postgres::Client::connect(
        &crate::backend::with_database(&admin, &name),
        postgres::NoTls,
    )
    .expect("connect")
    .query_one("SELECT to_regclass('stepwise_schema') IS NOT NULL", &[])
    .expect("ask")
    .get(0);
    assert!(made, "the CLI made its tables in the kept database");
    drop(window);
    let _ = client.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
}
