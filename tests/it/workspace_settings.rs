//! A workspace's settings cannot spend the user's key or money: redefining, re-pricing or
//! re-targeting the user's providers and models, or putting an alias of its own on a provider
//! whose key comes from the user, is refused before any call, naming the file, line and name.

use crate::fake_llm::{FakeProvider, openai_reply};
use crate::llm::env_with_provider;

#[test]
fn a_workspace_that_would_spend_the_users_key_is_refused_before_any_call() {
    let users = FakeProvider::start(vec![openai_reply("hi", 10, 100_000)]);
    let elsewhere = FakeProvider::start(vec![openai_reply("hi", 10, 5)]);
    // The user's settings: provider `fake` with their key, model `m` at $1/$2 per million.
    let env = env_with_provider("openai", &users.base_url());
    let ask = |model: &str| {
        env.workflow(
            &format!("ask-{model}.yaml"),
            &format!(
                "name: ask\nsteps:\n  - id: ask\n    type: prompt\n    model: {model}\n    prompt: hi\n    max_tokens: 100000\nbudget: {{ usd: 0.01 }}\n"
            ),
        )
    };
    let free = "price: { input_per_mtok_usd: 0, output_per_mtok_usd: 0 }";
    let cases = [
        // The user's alias, re-priced at $0 (the budget would never ask).
        (
            format!("models:\n  m:\n    provider: fake\n    model: tiny-1\n    {free}\n"),
            "m",
            "model `m`",
            2,
        ),
        // The user's provider, re-targeted at another server (the prompts would go there).
        (
            format!(
                "providers:\n  fake:\n    kind: openai\n    base_url: {}\n",
                elsewhere.base_url()
            ),
            "m",
            "provider `fake`",
            2,
        ),
        // An alias of the workspace's own on the user's keyed provider, at $0.
        (
            format!("\n\nmodels:\n  free:\n    provider: fake\n    model: tiny-1\n    {free}\n"),
            "free",
            "model `free`",
            4,
        ),
    ];
    for (settings, model, name, line) in cases {
        env.write(".stepwise/settings.yaml", &settings);
        let out = env.run(&ask(model), &[]);
        assert_eq!(out.code, 2, "{settings}: {out}");
        let said = format!("{}{}", out.stdout, out.stderr);
        assert!(
            said.contains(".stepwise/settings.yaml")
                && said.contains(&format!("line {line}"))
                && said.contains(name),
            "{settings}: {said}"
        );
    }
    assert!(users.seen().is_empty(), "no call went out with the key");
    assert!(elsewhere.seen().is_empty(), "no prompt went elsewhere");

    // Without the workspace's file the user's budget holds: the call waits to be approved.
    std::fs::remove_file(env.ws.join(".stepwise/settings.yaml")).expect("remove");
    let out = env.run(&ask("m"), &[]);
    assert_eq!(out.code, 3, "the budget asks: {out}");
    assert!(users.seen().is_empty());
}

/// Puts something at a path.
type Plant<'a> = dyn Fn(&std::path::Path) + 'a;

/// What sits at a workspace's settings or policy path cannot hang, flood or mislead a run: a
/// FIFO, a link to a file elsewhere, or a huge file is refused at once, naming the file, and
/// what a link points at is never read (nor quoted in the error).
#[test]
fn a_workspaces_files_are_plain_files_or_refused_at_once() {
    let env = crate::support::Env::new();
    std::fs::write(
        env.root().join("config/stepwise/settings.yaml"),
        "providers:\n  sim:\n    kind: simulated\nmodels:\n  sim:\n    provider: sim\n    model: echo\n",
    )
    .expect("settings");
    let workflow = env.workflow(
        "ask.yaml",
        "name: ask\nsteps:\n  - id: ask\n    type: prompt\n    model: sim\n    prompt: hi\n",
    );
    let secret = env.root().join("elsewhere.yaml");
    std::fs::write(&secret, "root:secret-line-7f3a: 1\n").expect("write");
    let dir = env.ws.join(".stepwise");
    std::fs::create_dir_all(&dir).expect(".stepwise");
    for name in ["settings.yaml", "policy.yaml"] {
        let path = dir.join(name);
        let plant: [(&str, &Plant<'_>); 3] = [
            ("a FIFO", &|p| {
                nix::unistd::mkfifo(p, nix::sys::stat::Mode::S_IRWXU).expect("mkfifo")
            }),
            ("a link", &|p| {
                std::os::unix::fs::symlink(&secret, p).expect("symlink")
            }),
            ("a huge file", &|p| {
                let file = std::fs::File::create(p).expect("create");
                file.set_len(64 * 1024 * 1024)
                    .expect("a sparse 64 MiB file");
            }),
        ];
        for (what, plant) in plant {
            plant(&path);
            let started = std::time::Instant::now();
            let out = env.run(&workflow, &[]);
            assert!(
                started.elapsed() < std::time::Duration::from_secs(10),
                "{name} as {what}: not at once"
            );
            assert_eq!(out.code, 2, "{name} as {what}: {out}");
            let said = format!("{}{}", out.stdout, out.stderr);
            assert!(said.contains(&path.display().to_string()), "{said}");
            assert!(!said.contains("secret-line"), "{name} as {what}: {said}");
            std::fs::remove_file(&path).expect("remove");
        }
    }
    assert_eq!(env.run(&workflow, &[]).code, 0, "plain again, the run goes");
}
