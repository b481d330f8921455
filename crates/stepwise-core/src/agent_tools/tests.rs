use serde_json::{Value, json};

use super::*;
use crate::llm::ToolCall;
use crate::operation::{OperationError, OperationErrorKind, OperationResult};
use crate::policy::{Effect, GateKind, Policy};

fn none() -> Policy {
    Policy::compile(&[]).unwrap()
}

fn call(name: &str, arguments: Value) -> ToolCall {
    ToolCall {
        id: "c1".into(),
        name: name.into(),
        arguments,
        signature: None,
        malformed: None,
    }
}

#[test]
fn a_read_becomes_a_read_operation_and_wrong_calls_are_told_what_is_wrong() {
    let offered = vec![tool_spec("read_file").unwrap()];
    assert_eq!(
        call_request(
            &call("read_file", json!({"path": "a.txt"})),
            &offered,
            &[],
            None
        ),
        Ok(ToolAction::Operation(OperationRequest::ReadFile {
            path: "a.txt".into(),
            missing_ok: false
        }))
    );
    let told = |c| call_request(&c, &offered, &[], None).unwrap_err();
    assert!(told(call("read_file", json!({}))).contains("`path`"));
    // However it is spelled, the path read is the one the policy judges.
    for spelled in [
        "./secrets/key.txt",
        "secrets//key.txt",
        "secrets/./key.txt",
        "secrets\\key.txt",
    ] {
        assert_eq!(
            call_request(
                &call("read_file", json!({"path": spelled})),
                &offered,
                &[],
                None
            ),
            Ok(ToolAction::Operation(OperationRequest::ReadFile {
                path: "secrets/key.txt".into(),
                missing_ok: false
            })),
            "{spelled}"
        );
    }
    assert!(told(call("read_file", json!({"path": "../x"}))).contains("`..`"));
    assert!(told(call("read_file", json!({"path": "/etc/passwd"}))).contains("absolute"));
    assert!(told(call("read_file", json!({"path": "a", "offset": 0}))).contains("`offset`"));
    // What a model leaves out it often sends as null.
    assert!(
        call_request(
            &call(
                "read_file",
                json!({"path": "a", "offset": null, "limit": null})
            ),
            &offered,
            &[],
            None
        )
        .is_ok()
    );
    assert!(told(call("rm_rf", json!({}))).contains("there is no tool `rm_rf`"));
    let mut cut_off = call("read_file", json!({}));
    cut_off.malformed = Some("the arguments are not JSON (EOF); were they cut off?".into());
    assert!(told(cut_off).contains("were they cut off?; send them again"));
    // A built-in tool the step did not offer is not callable either.
    assert!(call_request(&call("read_file", json!({"path": "a"})), &[], &[], None).is_err());
}

#[test]
fn a_listing_shows_only_what_the_agent_may_read_and_says_when_it_is_cut() {
    let offered = vec![tool_spec("list_files").unwrap()];
    assert_eq!(
        call_request(&call("list_files", json!({})), &offered, &[], None),
        Ok(ToolAction::Operation(OperationRequest::ListFiles {
            path: ".".into(),
            glob: None
        }))
    );
    assert_eq!(
        call_request(
            &call("list_files", json!({"path": "./src/", "glob": "**/*.rs"})),
            &offered,
            &[],
            None
        ),
        Ok(ToolAction::Operation(OperationRequest::ListFiles {
            path: "src".into(),
            glob: Some("**/*.rs".into())
        }))
    );
    assert!(
        call_request(
            &call("list_files", json!({"glob": "a{"})),
            &offered,
            &[],
            None
        )
        .is_err()
    );
    let deny = crate::policy::RuleSpec {
        effect: Effect::Deny,
        kind: Some(GateKind::ReadFile),
        paths: vec!["secrets/**".into()],
        commands: vec![],
        env: vec![],
        pass_env: vec![],
        unchecked_shell: false,
        arguments: Default::default(),
        source: "test".into(),
    };
    let policy = Policy::compile(&[deny]).unwrap();
    let listed = Ok(OperationResult::FilesListed {
        paths: vec!["a.txt".into(), "secrets/key.txt".into()],
        truncated: true,
    });
    let told = call_result(&call("list_files", json!({})), &listed, &policy);
    assert!(told.starts_with("a.txt\n[more files"), "{told}");
    assert!(!told.contains("secrets"), "{told}");
}

#[test]
fn results_are_the_lines_asked_for_cut_with_a_note_and_errors_say_so() {
    let read = |content: &str| {
        Ok(OperationResult::FileRead {
            exists: true,
            content: content.into(),
            hash: None,
        })
    };
    let whole = call("read_file", json!({"path": "a"}));
    assert_eq!(
        call_result(&whole, &read("1\n2\n3\n"), &none()),
        "1\n2\n3\n"
    );
    let middle = call("read_file", json!({"path": "a", "offset": 2, "limit": 1}));
    assert_eq!(call_result(&middle, &read("1\n2\n3\n"), &none()), "2\n");
    let big = "é".repeat(TOOL_RESULT_MAX_BYTES);
    let cut = call_result(&whole, &read(&big), &none());
    assert!(cut.len() < TOOL_RESULT_MAX_BYTES + 200);
    assert!(
        cut.contains("[cut: this is the first"),
        "{}",
        &cut[cut.len() - 100..]
    );
    let failed = Err(OperationError::new(
        OperationErrorKind::NotFound,
        "no file `a`",
    ));
    assert_eq!(
        call_result(&whole, &failed, &none()),
        "error: there is no file `a`"
    );
    // The engine's words may name the host's paths: the model is told the tool's own.
    let outside = Err(OperationError::new(
        OperationErrorKind::Sandbox,
        "`a` is a link to /home/ann/.ssh/id_rsa, outside the workspace",
    ));
    assert_eq!(
        call_result(&whole, &outside, &none()),
        "error: `a` leads outside the workspace"
    );
}
