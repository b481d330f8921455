//! The engine under load: a model's stream is never held up by another run's slow commits
//! (operations run off the commit thread, and their progress reaches a follower without
//! polling), and following hundreds of runs one after another leaves threads and memory where
//! they were.

use std::time::{Duration, Instant};

use stepwise_core::event::Event;
use stepwise_core::ids::EventSeq;
use stepwise_engine::{Engine, RunUpdate};

use crate::fake_llm::{FakeProvider, Reply, openai_stream};
use crate::support::{Env, runtime, threads};

const PATIENCE: Duration = Duration::from_secs(60);

/// An environment whose user settings name a keyless OpenAI-compatible provider at `base_url`
/// and model `m` on it.
fn env_with_local_model(base_url: &str) -> (Env, std::path::PathBuf) {
    let env = Env::new();
    let settings = env.root().join("config/stepwise/settings.yaml");
    std::fs::write(
        &settings,
        format!(
            "providers:\n  local:\n    kind: openai\n    base_url: {base_url}\nmodels:\n  m:\n    provider: local\n    model: tiny-1\n    price: {{ input_per_mtok_usd: 1.0, output_per_mtok_usd: 1.0 }}\n"
        ),
    )
    .expect("write settings");
    env.allow_everything();
    (env, settings)
}

fn engine(env: &Env, settings: &std::path::Path) -> Engine {
    let mut config = env.engine_config();
    config.settings = Some(settings.to_path_buf());
    Engine::open(config).expect("open the engine")
}

/// An OpenAI stream of `pieces`, then its finish and usage.
fn stream_of(pieces: &[String], gap: Duration) -> Reply {
    let pieces: Vec<&str> = pieces.iter().map(String::as_str).collect();
    Reply::sse(openai_stream(&pieces, 5, 60), gap)
}

#[test]
fn a_models_stream_reaches_its_follower_while_another_runs_commits_are_slow() {
    // Timing is measured: not beside another heavy test on a small machine.
    let _alone = crate::support::heavy();
    const PIECES: usize = 60;
    const PACE: Duration = Duration::from_millis(10);
    let pieces: Vec<String> = (0..PIECES).map(|i| format!("w{i} ")).collect();
    let server = FakeProvider::start(vec![stream_of(&pieces, PACE)]);
    let (env, settings) = env_with_local_model(&server.base_url());
    let mut chain = String::from("name: slow\nsteps:\n");
    for i in 0..15 {
        let needs = if i == 0 {
            String::new()
        } else {
            format!("    needs: [c{}]\n", i - 1)
        };
        chain.push_str(&format!(
            "  - id: c{i}\n    type: run_command\n    command: \"true\"\n{needs}"
        ));
    }
    let slow = env.workflow("slow.yaml", &chain);
    let ask = env.workflow(
        "ask.yaml",
        "name: ask\nsteps:\n  - id: ask\n    type: prompt\n    model: m\n    prompt: count\n",
    );
    runtime().block_on(async {
        let engine = engine(&env, &settings);
        // Every commit of the slow run waits 200 ms on the commit thread, as on a sick disk.
        let slow_run = engine
            .start_run(env.start_request(slow))
            .await
            .expect("start the slow run");
        engine
            .test_hooks()
            .slow_commits(Some(slow_run.run_id()), Duration::from_millis(200));
        tokio::time::sleep(Duration::from_millis(300)).await;
        let streaming = engine
            .start_run(env.start_request(ask))
            .await
            .expect("start the stream");
        let mut feed = engine.follow_run(streaming.run_id().as_str(), EventSeq::ZERO);
        let mut arrivals = Vec::new();
        let mut text = String::new();
        tokio::time::timeout(PATIENCE, async {
            while let Some(update) = feed.next().await {
                if let RunUpdate::Progress { text: piece, .. } = update.expect("the feed") {
                    arrivals.push(Instant::now());
                    text.push_str(&piece);
                }
            }
        })
        .await
        .expect("the streaming run ends");
        assert_eq!(text, pieces.concat(), "every piece arrives, in order");
        let gaps: Vec<Duration> = arrivals.windows(2).map(|w| w[1] - w[0]).collect();
        let worst = gaps.iter().max().copied().unwrap_or_default();
        assert!(
            worst <= Duration::from_millis(50),
            "a gap of {worst:?} between pieces; all gaps in ms: {:?}",
            gaps.iter().map(Duration::as_millis).collect::<Vec<_>>()
        );
        // The slow run was committing, slowly, all along.
        let slow_events = engine
            .load_run(slow_run.run_id().as_str())
            .await
            .expect("load the slow run")
            .events;
        let first = arrivals.first().copied().expect("progress arrived");
        let last = arrivals.last().copied().expect("progress arrived");
        let span = (last - first).as_millis() as i64;
        assert!(span >= 400, "the stream took {span} ms");
        let commits: Vec<i64> = slow_events
            .iter()
            .filter(|(_, e)| matches!(e, Event::OperationSucceeded { .. }))
            .map(|(s, _)| s.recorded_at_ms)
            .collect();
        assert!(
            commits.windows(2).any(|w| w[1] - w[0] >= 200),
            "the slow run's commits were slowed: {commits:?}"
        );
        let _ = slow_run.wait().await;
    });
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

#[test]
fn following_500_runs_one_after_another_leaves_threads_and_memory_where_they_were() {
    let _alone = crate::support::heavy();
    if !crate::lifetimes::isolated(
        "live_load::following_500_runs_one_after_another_leaves_threads_and_memory_where_they_were",
    ) {
        return;
    }
    let pieces: Vec<String> = (0..20).map(|i| format!("p{i} ")).collect();
    let server = FakeProvider::start(vec![stream_of(&pieces, Duration::ZERO)]);
    let (env, settings) = env_with_local_model(&server.base_url());
    let wf = env.workflow(
        "both.yaml",
        "name: both\nsteps:\n  - id: ask\n    type: prompt\n    model: m\n    prompt: go\n  - id: out\n    type: run_command\n    command: \"for i in 1 2 3 4 5; do echo line $i; done\"\n    needs: [ask]\n",
    );
    runtime().block_on(async {
        let engine = engine(&env, &settings);
        let mut progress = 0usize;
        let mut after_50 = None;
        for i in 0..500 {
            let handle = engine.start_run(env.start_request(wf.clone())).await.expect("start");
            let mut feed = engine.follow_run(handle.run_id().as_str(), EventSeq::ZERO);
            let followed = tokio::time::timeout(PATIENCE, async {
                let mut ended = false;
                while let Some(update) = feed.next().await {
                    match update.expect("the feed") {
                        RunUpdate::Progress { .. } => progress += 1,
                        RunUpdate::Event(e) => ended |= e.ends_run(),
                    }
                }
                ended
            })
            .await
            .expect("the run ends");
            assert!(followed, "run {i} was followed to its end");
            handle.wait().await.expect("the driver");
            if i == 49 {
                // Idle blocking threads of the runtimes retire after a while: counted once
                // they have.
                tokio::time::sleep(Duration::from_millis(2500)).await;
                after_50 = Some((threads(), rss_kib()));
            }
        }
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let (threads_50, rss_50) = after_50.expect("measured after 50 runs");
        let (threads_500, rss_500) = (threads(), rss_kib());
        assert!(progress > 0, "progress was followed");
        assert_eq!(threads_500, threads_50, "threads after 50 runs and after 500");
        assert!(
            rss_500 <= rss_50 + 10 * 1024,
            "memory grew from {rss_50} KiB after 50 runs to {rss_500} KiB after 500"
        );
        eprintln!("soak: {threads_50} threads; RSS {rss_50} KiB after 50 runs, {rss_500} KiB after 500; {progress} progress pieces");
    });
}
