//! The tamper-evident log: `stepwise verify` over a real run, intact and then altered by one
//! byte in its database file.

use crate::support::Env;

#[test]
fn verify_finds_a_run_intact_and_names_the_event_one_altered_byte_broke() {
    let env = Env::new();
    env.allow_everything();
    env.write("notes.txt", "one\n");
    let wf = env.workflow(
        "audit.yaml",
        r#"
name: audit
steps:
  - id: read
    type: read_file
    path: notes.txt
  - id: edit
    needs: [read]
    type: edit_file
    path: notes.txt
    content: "two\n"
  - id: list
    needs: [edit]
    type: run_command
    command: ["ls"]
"#,
    );
    let out = env.run(&wf, &[]);
    assert_eq!(out.code, 0, "{out}");
    let run = out.run_id();

    let verified = env.stepwise(&["verify", &run, "--json"]);
    assert_eq!(verified.code, 0, "{verified}");
    let report = verified.json();
    assert_eq!(report["intact"], true, "{report}");
    let events = report["events"].as_u64().expect("events");
    assert_eq!(events, env.event_count(Some(&run)) as u64);
    assert!(report["blobs"].as_u64().expect("blobs") >= 2, "{report}");
    let last = report["last_link"].as_str().expect("last link").to_string();
    let text = env.stepwise(&["verify", &run]);
    assert!(text.stdout.contains("chain     intact"), "{text}");
    assert!(text.stdout.contains(&last), "{text}");

    // One byte of one event's payload changed in the database, as someone with the file (or
    // the table's owner on the server, who may lift its trigger) could.
    let target = env
        .database
        .events()
        .into_iter()
        .find(|(of, event)| *of == run && event.event_type == "OperationSucceeded")
        .map(|(_, event)| event.seq.get())
        .expect("an operation's result");
    let seq = i64::try_from(target).expect("a seq");
    match &env.database.url {
        Some(url) => {
            let mut db = postgres::Client::connect(url, postgres::NoTls).expect("connect");
            db.batch_execute("ALTER TABLE events DISABLE TRIGGER events_append_only")
                .expect("lift the trigger");
            db.execute(
                "UPDATE events SET payload = replace(payload, 'one', 'onE') WHERE run_id = $1 AND seq = $2",
                &[&run, &seq],
            )
            .expect("alter the event");
        }
        None => {
            let db = rusqlite::Connection::open(&env.db).expect("open the database");
            db.execute_batch("DROP TRIGGER events_no_update")
                .expect("lift the trigger");
            db.execute(
                "UPDATE events SET payload = replace(payload, 'one', 'onE') WHERE run_id = ?1 AND seq = ?2",
                rusqlite::params![run, seq],
            )
            .expect("alter the event");
        }
    }
    let broken = env.stepwise(&["verify", &run, "--json"]);
    assert_eq!(broken.code, 1, "{broken}");
    let report = broken.json();
    assert_eq!(report["intact"], false);
    assert_eq!(report["broken_at"].as_u64(), Some(target), "{report}");
    let text = env.stepwise(&["verify", &run]);
    assert!(
        text.stdout.contains(&format!("BROKEN at event {target}")),
        "{text}"
    );
}
