//! `Journal::performance` over a real SQLite file in a temporary directory: per-agent and
//! overall response-time percentiles, tokens and rates, per-pattern task outcomes and
//! durations, window edges (since inclusive, until exclusive), rows that do not decode,
//! and the migration that adds the `completed_at` index to an existing journal.
//!
//! Every expected figure is computed by hand in the comments next to it.

use chrono::{DateTime, Utc};
use rusqlite::Connection;
use sutazai_core::{
    Constraints, CoordinationPattern, Priority, Step, StepKind, StepStatus, Task, TaskRequest,
    TaskStatus,
};
use sutazai_store::{Journal, PerformanceStats, SCHEMA_VERSION, StoreError};

fn at(secs: i64, nanos: u32) -> DateTime<Utc> {
    DateTime::from_timestamp(1_750_000_000 + secs, nanos).expect("timestamp in range")
}

fn task(
    id: &str,
    pattern: CoordinationPattern,
    status: TaskStatus,
    started_at: Option<DateTime<Utc>>,
    completed_at: Option<DateTime<Utc>>,
) -> Task {
    Task {
        id: id.to_owned(),
        session_id: format!("session-{id}"),
        request: TaskRequest {
            name: format!("task {id}"),
            description: String::new(),
            task_type: String::new(),
            priority: Priority::Normal,
            requirements: Vec::new(),
            coordination_pattern: pattern,
            payload: serde_json::Value::Null,
            constraints: Constraints::default(),
        },
        status,
        assigned_agents: Vec::new(),
        approvals: Vec::new(),
        result: None,
        error: None,
        created_at: at(0, 0),
        started_at,
        completed_at,
    }
}

/// A finished step: `Some(duration)` completed, `None` failed (failed steps carry no
/// duration, as the step runner writes them).
fn step(
    key: &str,
    agent: &str,
    finished_at: DateTime<Utc>,
    duration: Option<f64>,
    tokens: (u32, u32),
) -> Step {
    Step {
        task_id: "host".to_owned(),
        key: key.to_owned(),
        seq: 0,
        kind: StepKind::Work,
        agent_id: agent.to_owned(),
        status: if duration.is_some() {
            StepStatus::Completed
        } else {
            StepStatus::Failed
        },
        input: String::new(),
        output: duration.map(|_| "out".to_owned()),
        error: duration.is_none().then(|| "model error".to_owned()),
        attempts: 1,
        model: Some("m".to_owned()),
        prompt_tokens: tokens.0,
        completion_tokens: tokens.1,
        duration,
        started_at: at(0, 0),
        finished_at: Some(finished_at),
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

/// Window `[at(1000), at(2000))`; see each row for whether it falls inside.
async fn seeded(dir: &tempfile::TempDir) -> Journal {
    use CoordinationPattern::*;
    use TaskStatus::*;
    let journal = Journal::open(&dir.path().join("journal.sqlite3")).expect("open");
    let tasks = [
        // Holds every step below; never ended.
        task("host", Collaborative, Running, Some(at(1, 0)), None),
        // pipeline: completed 200 s, 9.5 s, 30 s; one failed; two outside the window.
        task(
            "p1",
            Pipeline,
            Completed,
            Some(at(900, 0)),
            Some(at(1100, 0)),
        ),
        task(
            "p2",
            Pipeline,
            Completed,
            Some(at(1200, 500_000_000)),
            Some(at(1210, 0)),
        ),
        task(
            "p3",
            Pipeline,
            Completed,
            Some(at(1300, 0)),
            Some(at(1330, 0)),
        ),
        task("p4", Pipeline, Failed, Some(at(1390, 0)), Some(at(1400, 0))),
        task(
            "p5",
            Pipeline,
            Completed,
            Some(at(1990, 0)),
            Some(at(2000, 0)),
        ),
        task(
            "p6",
            Pipeline,
            Completed,
            Some(at(990, 0)),
            Some(at(999, 0)),
        ),
        // swarm: two cancellations, one of them before it ever started.
        task("s1", Swarm, Cancelled, None, Some(at(1500, 0))),
        task("s2", Swarm, Cancelled, Some(at(1590, 0)), Some(at(1600, 0))),
        // hierarchical: completed exactly at the window's start (inclusive), 10 s.
        task(
            "h1",
            Hierarchical,
            Completed,
            Some(at(990, 0)),
            Some(at(1000, 0)),
        ),
        // queued, never ended: counts nowhere.
        task("q1", Hierarchical, Queued, None, None),
    ];
    for t in &tasks {
        journal.insert_task(t).await.expect("insert task");
    }
    let steps = [
        // alpha: completed 0.5 1.0 1.5 2.0 10.0 in the window, one failed; 99 s after it.
        step("a1", "alpha", at(1000, 0), Some(1.0), (10, 1)),
        step("a2", "alpha", at(1100, 0), Some(10.0), (10, 1)),
        step("a3", "alpha", at(1200, 0), Some(0.5), (10, 1)),
        step("a4", "alpha", at(1300, 0), Some(2.0), (10, 1)),
        step("a5", "alpha", at(1400, 0), Some(1.5), (10, 1)),
        step("a6", "alpha", at(1500, 0), None, (7, 0)),
        step("a7", "alpha", at(2500, 0), Some(99.0), (1000, 1000)),
        // beta: completed 3.0 and 4.0, failed twice.
        step("b1", "beta", at(1100, 0), Some(4.0), (20, 5)),
        step("b2", "beta", at(1200, 0), Some(3.0), (20, 5)),
        step("b3", "beta", at(1300, 0), None, (20, 0)),
        step("b4", "beta", at(1999, 999_999_999), None, (20, 0)),
        // gamma: only a failure in the window; its completed step is one ns too late.
        step("g1", "gamma", at(1600, 0), None, (3, 0)),
        step("g2", "gamma", at(2000, 0), Some(5.0), (3, 3)),
    ];
    for s in &steps {
        journal.put_step(s).await.expect("put step");
    }
    journal
}

async fn window(journal: &Journal) -> PerformanceStats {
    journal
        .performance(Some(at(1000, 0)), Some(at(2000, 0)))
        .await
        .expect("performance")
}

#[tokio::test]
async fn agent_figures_and_percentiles_over_the_window() {
    let dir = tempfile::tempdir().expect("tempdir");
    let journal = seeded(&dir).await;
    let perf = window(&journal).await;

    let ids: Vec<&str> = perf
        .agents
        .iter()
        .map(|a| a.totals.agent_id.as_str())
        .collect();
    assert_eq!(ids, ["alpha", "beta", "gamma"]);

    let alpha = &perf.agents[0];
    assert_eq!((alpha.totals.completed, alpha.totals.failed), (5, 1));
    // 1.0 + 10.0 + 0.5 + 2.0 + 1.5 = 15.0; tokens 5 * 10 + 7 in, 5 * 1 out.
    assert!(close(alpha.totals.total_duration_secs, 15.0), "{alpha:?}");
    assert_eq!(
        (alpha.totals.prompt_tokens, alpha.totals.completion_tokens),
        (57, 5)
    );
    // Sorted 0.5 1.0 1.5 2.0 10.0: p50 is rank ceil(0.5 * 5) = 3, p95 rank ceil(4.75) = 5.
    assert_eq!(alpha.response_time.count, 5);
    assert_eq!(alpha.response_time.p50_secs, Some(1.5));
    assert_eq!(alpha.response_time.p95_secs, Some(10.0));
    assert_eq!(alpha.response_time.mean_secs(), Some(3.0));

    let beta = &perf.agents[1];
    // b4 finished 1 ns before the window's end: inside.
    assert_eq!((beta.totals.completed, beta.totals.failed), (2, 2));
    assert_eq!(
        (beta.totals.prompt_tokens, beta.totals.completion_tokens),
        (80, 10)
    );
    // Sorted 3.0 4.0: p50 rank 1, p95 rank 2.
    assert_eq!(beta.response_time.p50_secs, Some(3.0));
    assert_eq!(beta.response_time.p95_secs, Some(4.0));

    let gamma = &perf.agents[2];
    assert_eq!((gamma.totals.completed, gamma.totals.failed), (0, 1));
    assert_eq!(gamma.response_time.count, 0);
    assert_eq!(gamma.response_time.p50_secs, None);
    assert_eq!(gamma.response_time.p95_secs, None);

    // All agents: 0.5 1.0 1.5 2.0 3.0 4.0 10.0 -> p50 rank ceil(3.5) = 4, p95 ceil(6.65) = 7.
    assert_eq!(perf.response_time.count, 7);
    assert!(close(perf.response_time.total_secs, 22.0));
    assert_eq!(perf.response_time.p50_secs, Some(2.0));
    assert_eq!(perf.response_time.p95_secs, Some(10.0));

    // The per-agent totals are agent_stats' own.
    let stats = journal
        .agent_stats(Some(at(1000, 0)), Some(at(2000, 0)))
        .await
        .expect("agent stats");
    let totals: Vec<_> = perf.agents.iter().map(|a| a.totals.clone()).collect();
    assert_eq!(totals, stats);

    // Open window: alpha's 99 s step and gamma's late 5 s step count too.
    let all = journal.performance(None, None).await.expect("performance");
    let alpha = &all.agents[0];
    // Sorted 0.5 1.0 1.5 2.0 10.0 99.0: p50 rank 3, p95 rank ceil(5.7) = 6.
    assert_eq!(alpha.response_time.p50_secs, Some(1.5));
    assert_eq!(alpha.response_time.p95_secs, Some(99.0));
    assert_eq!(all.agents[2].response_time.p50_secs, Some(5.0));
    // 9 durations: 0.5 1 1.5 2 3 4 5 10 99 -> p50 rank 5 = 3.0, p95 rank ceil(8.55) = 9.
    assert_eq!(all.response_time.count, 9);
    assert_eq!(all.response_time.p50_secs, Some(3.0));
    assert_eq!(all.response_time.p95_secs, Some(99.0));
    journal.close().await;
}

#[tokio::test]
async fn pattern_figures_cover_tasks_that_ended_in_the_window() {
    let dir = tempfile::tempdir().expect("tempdir");
    let journal = seeded(&dir).await;
    let perf = window(&journal).await;

    let names: Vec<&str> = perf.patterns.iter().map(|p| p.pattern.as_str()).collect();
    // Sorted by name; collaborative has no ended task in the window, so it is absent.
    assert_eq!(names, ["hierarchical", "pipeline", "swarm"]);

    let hierarchical = &perf.patterns[0];
    assert_eq!(
        (
            hierarchical.completed,
            hierarchical.failed,
            hierarchical.cancelled
        ),
        (1, 0, 0)
    );
    assert_eq!(hierarchical.duration.p50_secs, Some(10.0));
    assert_eq!(hierarchical.duration.p95_secs, Some(10.0));

    let pipeline = &perf.patterns[1];
    // p1 p2 p3 completed, p4 failed; p5 ended at the (exclusive) end, p6 before the start.
    assert_eq!(
        (pipeline.completed, pipeline.failed, pipeline.cancelled),
        (3, 1, 0)
    );
    assert_eq!(pipeline.ended(), 4);
    // Durations 200, 9.5, 30: sorted 9.5 30 200, p50 rank 2, p95 rank ceil(2.85) = 3.
    assert_eq!(pipeline.duration.count, 3);
    assert!(close(pipeline.duration.total_secs, 239.5));
    assert!(close(
        pipeline.duration.mean_secs().expect("mean"),
        239.5 / 3.0
    ));
    assert_eq!(pipeline.duration.p50_secs, Some(30.0));
    assert_eq!(pipeline.duration.p95_secs, Some(200.0));

    let swarm = &perf.patterns[2];
    assert_eq!((swarm.completed, swarm.failed, swarm.cancelled), (0, 0, 2));
    assert_eq!(swarm.duration.count, 0);
    assert_eq!(swarm.duration.mean_secs(), None);
    assert_eq!(swarm.duration.p50_secs, None);

    // h1 + p1 + p2 + p3.
    assert_eq!(perf.tasks_completed(), 4);

    // Open window: p5 and p6 count too.
    let all = journal.performance(None, None).await.expect("performance");
    let pipeline = all
        .patterns
        .iter()
        .find(|p| p.pattern == CoordinationPattern::Pipeline)
        .expect("pipeline");
    assert_eq!((pipeline.completed, pipeline.failed), (5, 1));
    // 9 9.5 10 30 200: p50 rank 3 = 10, p95 rank 5 = 200.
    assert_eq!(pipeline.duration.p50_secs, Some(10.0));
    assert_eq!(pipeline.duration.p95_secs, Some(200.0));

    // An empty window has nothing at all.
    let none = journal
        .performance(Some(at(5000, 0)), Some(at(6000, 0)))
        .await
        .expect("performance");
    assert_eq!(none, PerformanceStats::default());
    journal.close().await;
}

#[tokio::test]
async fn a_request_without_a_pattern_counts_as_the_default_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("journal.sqlite3");
    let journal = Journal::open(&path).expect("open");
    let t = task(
        "old",
        CoordinationPattern::Swarm,
        TaskStatus::Completed,
        Some(at(10, 0)),
        Some(at(11, 250_000_000)),
    );
    journal.insert_task(&t).await.expect("insert");
    let conn = Connection::open(&path).expect("raw connection");
    conn.execute(
        "UPDATE tasks SET request_json = json_remove(request_json, '$.coordination_pattern')",
        [],
    )
    .expect("edit row");
    let perf = journal.performance(None, None).await.expect("performance");
    assert_eq!(perf.patterns.len(), 1);
    assert_eq!(perf.patterns[0].pattern, CoordinationPattern::default());
    assert_eq!(perf.patterns[0].duration.p50_secs, Some(1.25));
    journal.close().await;
}

#[tokio::test]
async fn undecodable_task_rows_are_reported_as_corrupt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("journal.sqlite3");
    let journal = Journal::open(&path).expect("open");
    let t = task(
        "bad",
        CoordinationPattern::Pipeline,
        TaskStatus::Failed,
        Some(at(10, 0)),
        Some(at(11, 0)),
    );
    journal.insert_task(&t).await.expect("insert");
    let conn = Connection::open(&path).expect("raw connection");

    conn.execute(
        "UPDATE tasks SET request_json = json_set(request_json, '$.coordination_pattern', 'mesh')",
        [],
    )
    .expect("edit row");
    match journal.performance(None, None).await {
        Err(StoreError::Corrupt { what }) => {
            assert!(what.contains("`bad`") && what.contains("mesh"), "{what}")
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }

    conn.execute("UPDATE tasks SET request_json = '{not json'", [])
        .expect("edit row");
    match journal.performance(None, None).await {
        Err(StoreError::Corrupt { what }) => {
            assert!(
                what.contains("`bad`") && what.contains("not JSON"),
                "{what}"
            )
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }

    // Outside the window the bad row is never read.
    assert!(
        journal
            .performance(Some(at(100, 0)), None)
            .await
            .expect("performance")
            .patterns
            .is_empty()
    );
    journal.close().await;
}

#[tokio::test]
async fn a_version_1_journal_gains_the_completed_at_index() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("journal.sqlite3");
    let journal = Journal::open(&path).expect("open");
    let t = task(
        "kept",
        CoordinationPattern::Hierarchical,
        TaskStatus::Completed,
        Some(at(1, 0)),
        Some(at(3, 0)),
    );
    journal.insert_task(&t).await.expect("insert");
    journal.close().await;

    // Back to what a build with only the first migration wrote.
    let conn = Connection::open(&path).expect("raw connection");
    conn.execute_batch("DROP INDEX tasks_by_completed; PRAGMA user_version = 1;")
        .expect("downgrade");
    drop(conn);

    let journal = Journal::open(&path).expect("reopen migrates");
    let conn = Connection::open(&path).expect("raw connection");
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("user_version");
    assert_eq!(version, i64::try_from(SCHEMA_VERSION).expect("small"));
    assert_eq!(SCHEMA_VERSION, 2);
    let indexed: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = 'tasks_by_completed'",
            [],
            |r| r.get(0),
        )
        .expect("index lookup");
    assert_eq!(indexed, 1);
    // The old row reads as before.
    let perf = journal.performance(None, None).await.expect("performance");
    assert_eq!(perf.patterns[0].duration.p50_secs, Some(2.0));
    journal.close().await;
}
