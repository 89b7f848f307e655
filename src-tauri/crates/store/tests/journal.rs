//! End-to-end tests of the journal over real SQLite files in temporary directories:
//! round-trips, upserts, ordering, filters, reopen after an unclean stop, a real
//! `kill -9` of a writing process, un-awaited writes, concurrency, corrupt rows,
//! schema versions, agent statistics and group-commit batching.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use chrono::{DateTime, Utc};
use rusqlite::Connection;
use serde_json::json;
use sutazai_core::{
    Approval, Constraints, CoordinationPattern, Priority, Step, StepKind, StepStatus, Task,
    TaskRequest, TaskStatus,
};
use sutazai_store::{Journal, SCHEMA_VERSION, StoreError};

fn db_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("journal.sqlite3")
}

fn at(secs: i64, nanos: u32) -> DateTime<Utc> {
    DateTime::from_timestamp(1_750_000_000 + secs, nanos).expect("timestamp in range")
}

/// A task with only the required fields set.
fn task(id: &str, created_at: DateTime<Utc>) -> Task {
    Task {
        id: id.to_owned(),
        session_id: format!("session-{id}"),
        request: TaskRequest {
            name: format!("task {id}"),
            description: String::new(),
            task_type: String::new(),
            priority: Priority::Normal,
            requirements: Vec::new(),
            coordination_pattern: CoordinationPattern::Collaborative,
            payload: serde_json::Value::Null,
            constraints: Constraints::default(),
        },
        status: TaskStatus::Queued,
        assigned_agents: Vec::new(),
        approvals: Vec::new(),
        result: None,
        error: None,
        created_at,
        started_at: None,
        completed_at: None,
    }
}

/// A task with every optional field set to something distinctive.
fn full_task(id: &str) -> Task {
    Task {
        id: id.to_owned(),
        session_id: "sess-42".to_owned(),
        request: TaskRequest {
            name: "Build the thing".to_owned(),
            description: "Write a \"quoted\" ünïcode description\nover two lines".to_owned(),
            task_type: "code_generation".to_owned(),
            priority: Priority::Critical,
            requirements: vec!["code_generation".to_owned(), "testing".to_owned()],
            coordination_pattern: CoordinationPattern::Swarm,
            payload: json!({"files": ["a.rs", "b.rs"], "depth": 3, "nested": {"ok": true}}),
            constraints: Constraints {
                max_agents: Some(5),
                estimated_duration: Some(12.5),
                required_approvals: vec!["security".to_owned(), "owner".to_owned()],
            },
        },
        status: TaskStatus::Failed,
        assigned_agents: vec!["senior-ai-engineer".to_owned(), "testing-qa".to_owned()],
        approvals: vec![Approval {
            name: "security".to_owned(),
            approved_by: "alice".to_owned(),
            approved_at: at(5, 999_999_999),
        }],
        result: Some(json!({"answer": 42, "notes": ["x", null]})),
        error: Some("deadline_exceeded".to_owned()),
        created_at: at(0, 123_456_789),
        started_at: Some(at(1, 1)),
        completed_at: Some(at(90, 500)),
    }
}

fn step(task_id: &str, key: &str, seq: u32, agent: &str) -> Step {
    Step {
        task_id: task_id.to_owned(),
        key: key.to_owned(),
        seq,
        kind: StepKind::Work,
        agent_id: agent.to_owned(),
        status: StepStatus::Running,
        input: format!("do {key}"),
        output: None,
        error: None,
        attempts: 1,
        model: None,
        prompt_tokens: 0,
        completion_tokens: 0,
        duration: None,
        started_at: at(10, 0),
        finished_at: None,
    }
}

/// `step` finished with `status` at `finished_at`, with token counts and a duration.
fn finished(mut s: Step, status: StepStatus, finished_at: DateTime<Utc>, tokens: u32) -> Step {
    s.status = status;
    s.finished_at = Some(finished_at);
    s.prompt_tokens = tokens;
    s.completion_tokens = tokens * 2;
    s.duration = Some(f64::from(tokens) / 10.0);
    match status {
        StepStatus::Completed => s.output = Some(format!("output of {}", s.key)),
        _ => s.error = Some("model error".to_owned()),
    }
    s
}

fn ids(tasks: &[Task]) -> Vec<&str> {
    tasks.iter().map(|t| t.id.as_str()).collect()
}

#[tokio::test]
async fn open_creates_parent_directories_and_sets_schema_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("a").join("b").join("journal.sqlite3");
    let journal = Journal::open(&path).expect("open");
    assert_eq!(journal.path(), path);
    journal.close().await;

    let conn = Connection::open(&path).expect("raw open");
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("user_version");
    assert_eq!(version, i64::try_from(SCHEMA_VERSION).expect("small"));
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .expect("journal_mode");
    assert_eq!(mode, "wal");
    drop(conn);

    // Reopening an up-to-date file migrates nothing and keeps working.
    let journal = Journal::open(&path).expect("reopen");
    journal
        .insert_task(&task("t", at(0, 0)))
        .await
        .expect("insert");
    journal.close().await;
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    Journal::open(&path).expect("open").close().await;
    let conn = Connection::open(&path).expect("raw open");
    conn.pragma_update(None, "user_version", SCHEMA_VERSION as i64 + 1)
        .expect("bump version");
    drop(conn);

    match Journal::open(&path) {
        Err(StoreError::SchemaTooNew { found, supported }) => {
            assert_eq!(found, SCHEMA_VERSION + 1);
            assert_eq!(supported, SCHEMA_VERSION);
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

#[tokio::test]
async fn a_file_that_is_not_a_database_fails_to_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    std::fs::write(&path, vec![b'x'; 4096]).expect("write junk");
    let err = Journal::open(&path).expect_err("junk must not open");
    assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
}

#[tokio::test]
async fn tasks_round_trip_every_field() {
    let dir = tempfile::tempdir().expect("tempdir");
    let journal = Journal::open(&db_path(&dir)).expect("open");
    let full = full_task("full");
    let bare = task("bare", at(1, 0));
    journal.insert_task(&full).await.expect("insert full");
    journal.insert_task(&bare).await.expect("insert bare");

    assert_eq!(journal.get_task("full").await.expect("get"), Some(full));
    assert_eq!(journal.get_task("bare").await.expect("get"), Some(bare));
    assert_eq!(journal.get_task("missing").await.expect("get"), None);
    journal.close().await;
}

#[tokio::test]
async fn update_task_rewrites_only_the_mutable_columns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let journal = Journal::open(&db_path(&dir)).expect("open");
    let original = task("t1", at(0, 0));
    journal.insert_task(&original).await.expect("insert");

    let mut changed = full_task("t1");
    changed.status = TaskStatus::Completed;
    journal.update_task(&changed).await.expect("update");

    let stored = journal.get_task("t1").await.expect("get").expect("present");
    // Mutable columns follow the update ...
    assert_eq!(stored.status, TaskStatus::Completed);
    assert_eq!(stored.assigned_agents, changed.assigned_agents);
    assert_eq!(stored.approvals, changed.approvals);
    assert_eq!(stored.result, changed.result);
    assert_eq!(stored.error, changed.error);
    assert_eq!(stored.started_at, changed.started_at);
    assert_eq!(stored.completed_at, changed.completed_at);
    // ... the rest stays as inserted.
    assert_eq!(stored.request, original.request);
    assert_eq!(stored.session_id, original.session_id);
    assert_eq!(stored.created_at, original.created_at);

    // Clearing optional columns clears them.
    journal.update_task(&original).await.expect("update back");
    assert_eq!(journal.get_task("t1").await.expect("get"), Some(original));
    journal.close().await;
}

#[tokio::test]
async fn failed_writes_report_their_own_error_and_spare_the_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let journal = Journal::open(&db_path(&dir)).expect("open");
    // Fired together so they most likely share a transaction; the outcome must not
    // depend on whether they do.
    let first = journal.insert_task(&task("a", at(0, 0)));
    let duplicate = journal.insert_task(&task("a", at(1, 0)));
    let orphan_step = journal.put_step(&step("nope", "work/0", 0, "x"));
    let unknown_update = journal.update_task(&task("ghost", at(0, 0)));
    let second = journal.insert_task(&task("b", at(2, 0)));
    let good_step = journal.put_step(&step("b", "work/0", 0, "x"));

    first.await.expect("first insert");
    assert!(matches!(duplicate.await, Err(StoreError::Sqlite(_))));
    assert!(matches!(orphan_step.await, Err(StoreError::Sqlite(_))));
    match unknown_update.await {
        Err(StoreError::UnknownTask { id }) => assert_eq!(id, "ghost"),
        other => panic!("expected UnknownTask, got {other:?}"),
    }
    second.await.expect("second insert");
    good_step.await.expect("good step");

    let a = journal
        .get_task("a")
        .await
        .expect("get")
        .expect("a present");
    assert_eq!(a.created_at, at(0, 0), "the duplicate must not overwrite");
    assert!(journal.get_task("b").await.expect("get").is_some());
    assert_eq!(journal.steps("b").await.expect("steps").len(), 1);
    assert!(journal.steps("nope").await.expect("steps").is_empty());
    journal.close().await;
}

#[tokio::test]
async fn steps_round_trip_every_field_and_upsert_by_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let journal = Journal::open(&db_path(&dir)).expect("open");
    journal
        .insert_task(&task("t", at(0, 0)))
        .await
        .expect("insert");

    let started = Step {
        kind: StepKind::Synthesize,
        ..step("t", "synth", 3, "senior-ai-engineer")
    };
    journal.put_step(&started).await.expect("put started");
    assert_eq!(
        journal.steps("t").await.expect("steps"),
        vec![started.clone()]
    );

    let done = Step {
        task_id: "t".to_owned(),
        key: "synth".to_owned(),
        seq: 3,
        kind: StepKind::Synthesize,
        agent_id: "senior-ai-engineer".to_owned(),
        status: StepStatus::Completed,
        input: "merge these".to_owned(),
        output: Some("merged ✓".to_owned()),
        error: Some("first attempt timed out".to_owned()),
        attempts: 2,
        model: Some("qwen2.5:0.5b".to_owned()),
        prompt_tokens: 1234,
        completion_tokens: 567,
        duration: Some(1.25),
        started_at: at(10, 7),
        finished_at: Some(at(12, 999)),
    };
    journal.put_step(&done).await.expect("put done");
    assert_eq!(journal.steps("t").await.expect("steps"), vec![done]);

    // And back: an upsert replaces optional columns with NULL too.
    journal.put_step(&started).await.expect("put started again");
    assert_eq!(
        journal.steps("t").await.expect("steps"),
        vec![started.clone()]
    );

    // The task and its steps in one read; none for an unknown id.
    let (task_read, steps) = journal
        .task_with_steps("t")
        .await
        .expect("read")
        .expect("journaled");
    assert_eq!(task_read, task("t", at(0, 0)));
    assert_eq!(steps, vec![started]);
    assert!(
        journal
            .task_with_steps("nope")
            .await
            .expect("read")
            .is_none()
    );
    journal.close().await;
}

#[tokio::test]
async fn steps_come_back_in_seq_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let journal = Journal::open(&db_path(&dir)).expect("open");
    journal
        .insert_task(&task("t", at(0, 0)))
        .await
        .expect("insert");
    journal
        .insert_task(&task("other", at(0, 0)))
        .await
        .expect("insert");
    for (key, seq) in [
        ("stage/2", 2),
        ("stage/0", 0),
        ("stage/3", 3),
        ("stage/1", 1),
    ] {
        journal
            .put_step(&step("t", key, seq, "a"))
            .await
            .expect("put");
    }
    journal
        .put_step(&step("other", "plan", 0, "a"))
        .await
        .expect("put");
    let keys: Vec<String> = journal
        .steps("t")
        .await
        .expect("steps")
        .into_iter()
        .map(|s| s.key)
        .collect();
    assert_eq!(keys, ["stage/0", "stage/1", "stage/2", "stage/3"]);
    journal.close().await;
}

#[tokio::test]
async fn list_tasks_is_newest_first_with_filter_and_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let journal = Journal::open(&db_path(&dir)).expect("open");
    // Inserted out of time order; `tie-1` and `tie-2` share a timestamp, so insertion
    // order decides between them.
    let specs = [
        ("mid", 5, TaskStatus::Running),
        ("old", 1, TaskStatus::Completed),
        ("tie-1", 7, TaskStatus::Running),
        ("tie-2", 7, TaskStatus::Queued),
        ("new", 9, TaskStatus::Running),
    ];
    for (id, secs, status) in specs {
        let mut t = task(id, at(secs, 0));
        t.status = status;
        journal.insert_task(&t);
    }
    journal.close().await;
    let journal = Journal::open(&db_path(&dir)).expect("reopen");

    let all = journal.list_tasks(None, 100).await.expect("list");
    assert_eq!(ids(&all), ["new", "tie-2", "tie-1", "mid", "old"]);
    let two = journal.list_tasks(None, 2).await.expect("list");
    assert_eq!(ids(&two), ["new", "tie-2"]);
    let running = journal
        .list_tasks(Some(TaskStatus::Running), 100)
        .await
        .expect("list");
    assert_eq!(ids(&running), ["new", "tie-1", "mid"]);
    let one_running = journal
        .list_tasks(Some(TaskStatus::Running), 1)
        .await
        .expect("list");
    assert_eq!(ids(&one_running), ["new"]);
    assert!(journal.list_tasks(None, 0).await.expect("list").is_empty());
    assert!(
        journal
            .list_tasks(Some(TaskStatus::Cancelled), usize::MAX)
            .await
            .expect("list")
            .is_empty()
    );

    let counts = journal.task_counts().await.expect("counts");
    assert_eq!(counts.len(), 6, "every status is reported: {counts:?}");
    assert_eq!(counts[&TaskStatus::Running], 3);
    assert_eq!(counts[&TaskStatus::Queued], 1);
    assert_eq!(counts[&TaskStatus::Completed], 1);
    assert_eq!(counts[&TaskStatus::Failed], 0);
    assert_eq!(counts[&TaskStatus::AwaitingApproval], 0);
    assert_eq!(counts[&TaskStatus::Cancelled], 0);
    journal.close().await;
}

#[tokio::test]
async fn unfinished_tasks_survive_a_drop_without_close() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    {
        let journal = Journal::open(&path).expect("open");
        let specs = [
            ("done", 0, TaskStatus::Completed),
            ("late", 9, TaskStatus::Running),
            ("waiting", 3, TaskStatus::AwaitingApproval),
            ("tie-a", 5, TaskStatus::Queued),
            ("tie-b", 5, TaskStatus::Running),
            ("failed", 4, TaskStatus::Failed),
            ("cancelled", 2, TaskStatus::Cancelled),
            ("first", 1, TaskStatus::Queued),
        ];
        let mut last = None;
        for (id, secs, status) in specs {
            let mut t = task(id, at(secs, 0));
            t.status = status;
            last = Some(journal.insert_task(&t));
        }
        journal
            .put_step(&finished(
                step("late", "work/0", 0, "a"),
                StepStatus::Completed,
                at(10, 0),
                7,
            ))
            .await
            .expect("step");
        // FIFO: the step committed, so every insert before it did too.
        last.expect("inserted").await.expect("last insert");
        // Dropped without close, like a process that exits without shutting down.
    }
    let journal = Journal::open(&path).expect("reopen");
    let unfinished = journal.unfinished_tasks().await.expect("unfinished");
    assert_eq!(
        ids(&unfinished),
        ["first", "waiting", "tie-a", "tie-b", "late"]
    );
    let steps = journal.steps("late").await.expect("steps");
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0].output.as_deref(), Some("output of work/0"));
    journal.close().await;
}

#[tokio::test]
async fn an_unawaited_commit_still_lands() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    let journal = Journal::open(&path).expect("open");
    // Dropped at once: the write is already queued and must not be cancelled.
    drop(journal.insert_task(&task("fire-and-forget", at(0, 0))));
    let _ignored = journal.put_step(&step("fire-and-forget", "plan", 0, "a"));
    journal.close().await;

    let journal = Journal::open(&path).expect("reopen");
    assert!(
        journal
            .get_task("fire-and-forget")
            .await
            .expect("get")
            .is_some()
    );
    assert_eq!(
        journal.steps("fire-and-forget").await.expect("steps").len(),
        1
    );

    // And without close: a later awaited write proves the earlier one committed.
    drop(journal.insert_task(&task("second", at(1, 0))));
    journal
        .put_step(&step("second", "plan", 0, "a"))
        .await
        .expect("later write");
    assert!(journal.get_task("second").await.expect("get").is_some());
    journal.close().await;
}

#[tokio::test]
async fn close_flushes_then_refuses_reads_and_writes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    let journal = Journal::open(&path).expect("open");
    let clone = journal.clone();
    let pending: Vec<_> = (0..200)
        .map(|i| journal.insert_task(&task(&format!("t{i}"), at(i, 0))))
        .collect();
    journal.close().await;
    for commit in pending {
        commit.await.expect("queued before close, so committed");
    }
    assert!(matches!(
        clone.insert_task(&task("after", at(0, 0))).await,
        Err(StoreError::Closed)
    ));
    assert!(matches!(
        clone.get_task("t0").await,
        Err(StoreError::Closed)
    ));
    // Closing again, from any clone, is harmless.
    clone.close().await;
    journal.close().await;

    let journal = Journal::open(&path).expect("reopen");
    assert_eq!(
        journal.list_tasks(None, 1000).await.expect("list").len(),
        200
    );
    journal.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_all_land() {
    let dir = tempfile::tempdir().expect("tempdir");
    let journal = Journal::open(&db_path(&dir)).expect("open");
    const WRITERS: usize = 16;
    const TASKS_EACH: usize = 100;
    let mut handles = Vec::new();
    for w in 0..WRITERS {
        let journal = journal.clone();
        handles.push(tokio::spawn(async move {
            for i in 0..TASKS_EACH {
                let id = format!("w{w}-t{i}");
                let mut t = task(&id, Utc::now());
                // Fire the first writes, await the last: FIFO makes that enough.
                journal.insert_task(&t);
                t.status = TaskStatus::Running;
                journal.update_task(&t);
                journal.put_step(&step(&id, "work/0", 0, &format!("agent-{}", w % 3)));
                let s = finished(
                    step(&id, "work/0", 0, &format!("agent-{}", w % 3)),
                    StepStatus::Completed,
                    Utc::now(),
                    1,
                );
                journal.put_step(&s);
                t.status = TaskStatus::Completed;
                journal.update_task(&t).await.expect("final update");
                // Reads interleave with the writes.
                let read = journal.get_task(&id).await.expect("read").expect("present");
                assert_eq!(read.status, TaskStatus::Completed);
            }
        }));
    }
    for handle in handles {
        handle.await.expect("writer task");
    }
    let counts = journal.task_counts().await.expect("counts");
    assert_eq!(
        counts[&TaskStatus::Completed],
        (WRITERS * TASKS_EACH) as u64
    );
    let stats = journal.agent_stats(None, None).await.expect("stats");
    let completed: u64 = stats.iter().map(|s| s.completed).sum();
    assert_eq!(completed, (WRITERS * TASKS_EACH) as u64);
    let journal_stats = journal.stats();
    assert_eq!(journal_stats.ops, (WRITERS * TASKS_EACH * 5) as u64);
    assert!(journal_stats.batches <= journal_stats.ops);
    journal.close().await;
}

#[tokio::test]
async fn writes_queued_together_share_a_transaction() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    let journal = Journal::open(&path).expect("open");
    journal
        .insert_task(&task("t", at(0, 0)))
        .await
        .expect("insert");
    let before = journal.stats();
    assert_eq!(before.batches, 1);
    assert_eq!(before.ops, 1);

    // Hold the database's write lock from a second connection, so the writer cannot
    // commit while the writes below are queued; it then finds them all waiting.
    let blocker = Connection::open(&path).expect("raw open");
    blocker
        .execute_batch("BEGIN IMMEDIATE")
        .expect("take write lock");
    const WRITES: usize = 10_000;
    let commits: Vec<_> = (0..WRITES)
        .map(|i| journal.put_step(&step("t", &format!("work/{i}"), i as u32, "a")))
        .collect();
    blocker
        .execute_batch("ROLLBACK")
        .expect("release write lock");
    for commit in commits {
        commit.await.expect("step");
    }

    let after = journal.stats();
    assert_eq!(after.ops - before.ops, WRITES as u64);
    // The writer may have taken the first write before the rest were queued; after that,
    // full batches of MAX_BATCH (4096): at most 1 + ceil(10_000 / 4096) = 4 transactions.
    let batches = after.batches - before.batches;
    assert!(batches <= 4, "{WRITES} writes took {batches} transactions");
    assert_eq!(after.max_batch, 4096);
    assert_eq!(journal.steps("t").await.expect("steps").len(), WRITES);
    journal.close().await;
}

#[tokio::test]
async fn corrupt_rows_are_reported_not_panicked_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    let journal = Journal::open(&path).expect("open");
    for id in ["bad-status", "bad-json", "bad-time", "good"] {
        journal
            .insert_task(&task(id, at(0, 0)))
            .await
            .expect("insert");
    }
    journal
        .put_step(&step("good", "work/0", 0, "a"))
        .await
        .expect("step");
    journal
        .put_step(&step("good", "work/1", 1, "a"))
        .await
        .expect("step");

    let raw = Connection::open(&path).expect("raw open");
    raw.execute_batch(
        "UPDATE tasks SET status = 'exploded' WHERE id = 'bad-status';
         UPDATE tasks SET request_json = '{not json' WHERE id = 'bad-json';
         UPDATE tasks SET created_at = 'last tuesday' WHERE id = 'bad-time';
         UPDATE steps SET kind = 'dance' WHERE key = 'work/0';
         UPDATE steps SET attempts = -3 WHERE key = 'work/1';",
    )
    .expect("corrupt rows");
    drop(raw);

    for id in ["bad-status", "bad-json", "bad-time"] {
        match journal.get_task(id).await {
            Err(StoreError::Corrupt { what }) => assert!(what.contains(id), "{what}"),
            other => panic!("{id}: expected Corrupt, got {other:?}"),
        }
    }
    assert!(matches!(
        journal.list_tasks(None, 10).await,
        Err(StoreError::Corrupt { .. })
    ));
    assert!(matches!(
        journal.task_counts().await,
        Err(StoreError::Corrupt { .. })
    ));
    match journal.steps("good").await {
        Err(StoreError::Corrupt { what }) => assert!(what.contains("work/0"), "{what}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    let raw = Connection::open(&path).expect("raw open");
    raw.execute_batch("UPDATE steps SET kind = 'work' WHERE key = 'work/0'")
        .expect("repair kind");
    drop(raw);
    match journal.steps("good").await {
        Err(StoreError::Corrupt { what }) => assert!(what.contains("attempts"), "{what}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // The good row still reads.
    assert!(journal.get_task("good").await.expect("get").is_some());
    journal.close().await;
}

#[tokio::test]
async fn agent_stats_cover_steps_finished_in_the_window() {
    let dir = tempfile::tempdir().expect("tempdir");
    let journal = Journal::open(&db_path(&dir)).expect("open");
    journal
        .insert_task(&task("t", at(0, 0)))
        .await
        .expect("insert");
    let steps = [
        finished(
            step("t", "a1", 0, "alpha"),
            StepStatus::Completed,
            at(100, 0),
            10,
        ),
        finished(
            step("t", "a2", 1, "alpha"),
            StepStatus::Failed,
            at(200, 0),
            3,
        ),
        finished(
            step("t", "a3", 2, "alpha"),
            StepStatus::Completed,
            at(300, 0),
            20,
        ),
        finished(
            step("t", "b1", 3, "beta"),
            StepStatus::Completed,
            at(150, 0),
            5,
        ),
        // Still running: no finished_at, never counted.
        step("t", "b2", 4, "beta"),
    ];
    for s in &steps {
        journal.put_step(s).await.expect("put");
    }

    let all = journal.agent_stats(None, None).await.expect("stats");
    assert_eq!(all.len(), 2);
    let alpha = &all[0];
    assert_eq!(alpha.agent_id, "alpha");
    assert_eq!((alpha.completed, alpha.failed), (2, 1));
    assert!((alpha.total_duration_secs - 3.0).abs() < 1e-9, "{alpha:?}");
    assert_eq!(alpha.prompt_tokens, 33);
    assert_eq!(alpha.completion_tokens, 66);
    let beta = &all[1];
    assert_eq!(beta.agent_id, "beta");
    assert_eq!((beta.completed, beta.failed), (1, 0));
    assert_eq!(beta.prompt_tokens, 5);

    // since is inclusive, until exclusive.
    let window = journal
        .agent_stats(Some(at(150, 0)), Some(at(300, 0)))
        .await
        .expect("stats");
    assert_eq!(window.len(), 2);
    assert_eq!((window[0].completed, window[0].failed), (0, 1));
    assert_eq!(window[0].total_duration_secs, 0.0);
    assert_eq!(window[0].prompt_tokens, 3);
    assert_eq!(
        (window[1].agent_id.as_str(), window[1].completed),
        ("beta", 1)
    );

    let late = journal
        .agent_stats(Some(at(250, 0)), None)
        .await
        .expect("stats");
    assert_eq!(late.len(), 1);
    assert_eq!((late[0].agent_id.as_str(), late[0].completed), ("alpha", 1));

    let early = journal
        .agent_stats(None, Some(at(100, 1)))
        .await
        .expect("stats");
    assert_eq!(early.len(), 1);
    assert_eq!(early[0].prompt_tokens, 10);

    assert!(
        journal
            .agent_stats(Some(at(400, 0)), Some(at(500, 0)))
            .await
            .expect("stats")
            .is_empty()
    );
    journal.close().await;
}

/// Environment variable that turns [`a_killed_writer_loses_nothing_it_confirmed`] into
/// the child process it spawns; holds the database path.
const CRASH_CHILD_DB: &str = "SUTAZAI_STORE_CRASH_CHILD_DB";
/// What the child prints once its confirmed writes resolved.
const CHILD_READY: &str = "<<crash-child-ready>>";
/// Tasks the child journals and confirms before it reports ready.
const CONFIRMED_TASKS: usize = 50;

/// The child: journals tasks the way the orchestrator does, half of them finished, awaits
/// every write, prints [`CHILD_READY`], then keeps writing without awaiting until it is killed.
fn crash_child(path: &Path) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let journal = Journal::open(path).expect("child open");
        for i in 0..CONFIRMED_TASKS {
            let id = format!("confirmed-{i}");
            let mut t = task(&id, at(i as i64, 0));
            journal.insert_task(&t);
            t.status = TaskStatus::Running;
            journal.update_task(&t);
            journal.put_step(&step(&id, "plan", 0, "a"));
            let plan = finished(
                step(&id, "plan", 0, "a"),
                StepStatus::Completed,
                at(1, 0),
                4,
            );
            journal.put_step(&plan);
            journal.put_step(&step(&id, "work/0", 1, "b"));
            if i.is_multiple_of(2) {
                let work = finished(
                    step(&id, "work/0", 1, "b"),
                    StepStatus::Completed,
                    at(2, 0),
                    4,
                );
                journal.put_step(&work);
                t.status = TaskStatus::Completed;
                t.result = Some(json!("done"));
            }
            journal
                .update_task(&t)
                .await
                .expect("child confirmed write");
        }
        // libtest prints the test's name on the same line first, hence a marker to search.
        println!("{CHILD_READY}");
        let mut i = 0u64;
        loop {
            let commit = journal.insert_task(&task(&format!("extra-{i}"), at(1000, 0)));
            if i.is_multiple_of(64) {
                commit.await.expect("child extra write");
            }
            i += 1;
        }
    });
}

#[test]
fn a_killed_writer_loses_nothing_it_confirmed() {
    if let Some(path) = std::env::var_os(CRASH_CHILD_DB) {
        crash_child(Path::new(&path));
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "a_killed_writer_loses_nothing_it_confirmed",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CRASH_CHILD_DB, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("child stdout");
    let ready = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|line| line.contains(CHILD_READY));
    // SIGKILL: no destructor, no close, the writer thread dies mid-batch.
    child.kill().expect("kill child");
    child.wait().expect("reap child");
    assert!(ready, "the child exited before confirming its writes");

    let raw = Connection::open(&path).expect("raw open");
    let check: String = raw
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(check, "ok");
    drop(raw);

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let journal = Journal::open(&path).expect("reopen after kill");
        let unfinished = journal.unfinished_tasks().await.expect("unfinished");
        let expected: Vec<String> = (0..CONFIRMED_TASKS)
            .filter(|i| i % 2 == 1)
            .map(|i| format!("confirmed-{i}"))
            .collect();
        let unfinished_ids: Vec<&str> = unfinished
            .iter()
            .map(|t| t.id.as_str())
            .filter(|id| id.starts_with("confirmed-"))
            .collect();
        assert_eq!(unfinished_ids, expected);
        for id in &expected {
            let steps = journal.steps(id).await.expect("steps");
            let statuses: Vec<(&str, StepStatus)> =
                steps.iter().map(|s| (s.key.as_str(), s.status)).collect();
            // The resumed run reuses `plan` and re-runs only `work/0`.
            assert_eq!(
                statuses,
                [
                    ("plan", StepStatus::Completed),
                    ("work/0", StepStatus::Running)
                ]
            );
            assert_eq!(steps[0].output.as_deref(), Some("output of plan"));
        }
        let counts = journal.task_counts().await.expect("counts");
        assert_eq!(counts[&TaskStatus::Completed], (CONFIRMED_TASKS / 2) as u64);
        // Whatever extra writes landed before the kill are whole rows.
        let extras = journal
            .list_tasks(Some(TaskStatus::Queued), usize::MAX)
            .await
            .expect("list");
        let distinct: HashSet<&str> = extras.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(distinct.len(), extras.len());
        assert!(extras.iter().all(|t| t.id.starts_with("extra-")));
        journal.close().await;
    });
}

#[test]
fn journal_is_a_cheap_shareable_handle() {
    fn assert_traits<T: Clone + Send + Sync + std::fmt::Debug + 'static>() {}
    assert_traits::<Journal>();
    fn assert_future<F: std::future::Future<Output = Result<(), StoreError>> + Send + Unpin>() {}
    assert_future::<sutazai_store::Commit>();
    fn assert_error<E: std::error::Error + Send + Sync + 'static>() {}
    assert_error::<StoreError>();
}

/// The writer does not checkpoint below its backstop (a commit must not wait on a
/// checkpoint's `fsync`): the checkpoint thread copies the WAL into the database file beside
/// it.
#[tokio::test]
async fn the_wal_is_checkpointed_beside_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let journal = Journal::open(&path).unwrap();
    let before = std::fs::metadata(&path).unwrap().len();
    let commits: Vec<_> = (0..3000)
        .map(|i| journal.insert_task(&task(&format!("t{i:05}"), at(i64::from(i), 0))))
        .collect();
    for c in commits {
        c.await.unwrap();
    }
    let began = std::time::Instant::now();
    while std::fs::metadata(&path).unwrap().len() <= before {
        assert!(
            began.elapsed() < std::time::Duration::from_secs(10),
            "nothing was copied into the database file"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(journal.list_tasks(None, 5000).await.unwrap().len(), 3000);
}
