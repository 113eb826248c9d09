//! Event store tests, each against a real SQLite file in its own temporary directory.

use mana_llm_shared::events::{RegistryEvent, EVENT_SCHEMA_VERSION, REGISTRY_STREAM};
use mana_llm_shared::{ContentHash, RegistryVersion};

use super::{is_stream_conflict, StorageFault, StoreError};
use crate::domain::tests::{published, FAST, LONG};
use crate::store::testutil::TempDir;

fn rejected() -> RegistryEvent {
    RegistryEvent::RegistryReloadRejected {
        source: "aliases.yaml".to_owned(),
        errors: vec!["`aliases` is empty — at least one alias is required".to_owned()],
    }
}

#[tokio::test]
async fn append_then_load_round_trips() {
    let dir = TempDir::new();
    let store = dir.store().await;
    let events = vec![published(1, FAST, "seed"), rejected()];
    let stored = store
        .append(REGISTRY_STREAM, 0, &events, "seed")
        .await
        .unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0].stream_sequence, 1);
    assert_eq!(stored[1].stream_sequence, 2);
    assert_eq!(stored[0].registry_version, Some(RegistryVersion(1)));
    assert!(stored[0].content_hash.is_some());
    assert_eq!(stored[1].registry_version, None);
    assert_eq!(stored[1].content_hash, None);
    assert_eq!(stored[0].schema_version, EVENT_SCHEMA_VERSION);
    assert!(stored[0].recorded_at.ends_with('Z'));

    let loaded = store.load(REGISTRY_STREAM).await.unwrap();
    assert_eq!(loaded, stored);
    assert!(store.load("another-stream").await.unwrap().is_empty());
}

#[tokio::test]
async fn appending_nothing_writes_nothing() {
    let dir = TempDir::new();
    let store = dir.store().await;
    assert!(store
        .append(REGISTRY_STREAM, 0, &[], "x")
        .await
        .unwrap()
        .is_empty());
    assert!(store.load(REGISTRY_STREAM).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_second_writer_at_the_same_position_conflicts() {
    let dir = TempDir::new();
    let store = dir.store().await;
    store
        .append(REGISTRY_STREAM, 0, &[published(1, FAST, "push")], "alice")
        .await
        .unwrap();
    let second = store
        .append(REGISTRY_STREAM, 0, &[published(1, LONG, "push")], "bob")
        .await;
    assert!(
        matches!(second, Err(StoreError::Conflict { expected: 0, .. })),
        "{second:?}"
    );
    // Ahead of the head is a conflict too: appending there would leave a gap.
    let ahead = store
        .append(REGISTRY_STREAM, 5, &[published(2, LONG, "push")], "bob")
        .await;
    assert!(
        matches!(ahead, Err(StoreError::Conflict { .. })),
        "{ahead:?}"
    );
    let loaded = store.load(REGISTRY_STREAM).await.unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].actor, "alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_racing_writers_one_wins() {
    let dir = TempDir::new();
    let store = dir.store().await;
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .append(
                        REGISTRY_STREAM,
                        0,
                        &[published(1, FAST, "push")],
                        &format!("w{i}"),
                    )
                    .await
            })
        })
        .collect();
    let (mut ok, mut conflicts) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => ok += 1,
            Err(StoreError::Conflict { .. }) => conflicts += 1,
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
    assert_eq!((ok, conflicts), (1, 49));
    let sequences: Vec<u64> = store
        .load(REGISTRY_STREAM)
        .await
        .unwrap()
        .iter()
        .map(|e| e.stream_sequence)
        .collect();
    assert_eq!(sequences, vec![1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_writers_that_retry_leave_no_gap_or_duplicate() {
    let dir = TempDir::new();
    let store = dir.store().await;
    let writers = 20;
    let tasks: Vec<_> = (0..writers)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                loop {
                    let head = store.load(REGISTRY_STREAM).await.unwrap().len() as u64;
                    let events = [published(head + 1, FAST, "push")];
                    match store
                        .append(REGISTRY_STREAM, head, &events, &format!("w{i}"))
                        .await
                    {
                        Ok(stored) => return stored[0].stream_sequence,
                        Err(StoreError::Conflict { .. }) => continue,
                        Err(other) => panic!("unexpected error: {other}"),
                    }
                }
            })
        })
        .collect();
    let mut won = Vec::new();
    for task in tasks {
        won.push(task.await.unwrap());
    }
    won.sort_unstable();
    let expected: Vec<u64> = (1..=writers).collect();
    assert_eq!(won, expected);
    let stored: Vec<u64> = store
        .load(REGISTRY_STREAM)
        .await
        .unwrap()
        .iter()
        .map(|e| e.stream_sequence)
        .collect();
    assert_eq!(stored, expected);
}

#[tokio::test]
async fn events_are_append_only() {
    let dir = TempDir::new();
    let store = dir.store().await;
    store
        .append(REGISTRY_STREAM, 0, &[published(1, FAST, "push")], "alice")
        .await
        .unwrap();
    let update = sqlx::query("UPDATE events SET actor = 'mallory'")
        .execute(store.pool())
        .await;
    let message = update.unwrap_err().to_string();
    assert!(message.contains("events are append-only"), "{message}");
    let delete = sqlx::query("DELETE FROM events")
        .execute(store.pool())
        .await;
    assert!(delete.is_err());
    assert_eq!(store.load(REGISTRY_STREAM).await.unwrap()[0].actor, "alice");
}

#[tokio::test]
async fn the_unique_constraint_is_recognised_as_a_conflict() {
    let dir = TempDir::new();
    let store = dir.store().await;
    let insert = "INSERT INTO events (stream, stream_sequence, event_type, schema_version, \
                  payload, actor, recorded_at) VALUES ('s', 1, 'x', 1, '{}', 'a', 'now')";
    sqlx::query(insert).execute(store.pool()).await.unwrap();
    let duplicate = sqlx::query(insert).execute(store.pool()).await.unwrap_err();
    assert!(is_stream_conflict(&duplicate), "{duplicate}");
}

#[tokio::test]
async fn version_events_get_outbox_rows_and_rejections_do_not() {
    let dir = TempDir::new();
    let store = dir.store().await;
    let events = vec![
        published(1, FAST, "seed"),
        rejected(),
        published(2, LONG, "push"),
    ];
    let stored = store
        .append(REGISTRY_STREAM, 0, &events, "seed")
        .await
        .unwrap();
    let outbox = store.unsent_outbox(10).await.unwrap();
    assert_eq!(outbox.len(), 2);
    assert_eq!(outbox[0].event_sequence, stored[0].sequence);
    assert_eq!(outbox[1].event_sequence, stored[2].sequence);
    let first = outbox[0].published().unwrap();
    assert_eq!(first.version.0, 1);
    assert_eq!(
        Some(first.hash.as_str()),
        stored[0].content_hash.as_ref().map(ContentHash::as_str)
    );
    assert_eq!(outbox[0].hash, first.hash.as_str());
    assert_eq!(outbox[1].version, 2);
    assert_eq!(
        (outbox[0].attempts, outbox[0].sent_at.as_deref()),
        (0, None)
    );

    store.mark_failed(outbox[0].id, "redis down").await.unwrap();
    store
        .mark_failed(outbox[0].id, "redis still down")
        .await
        .unwrap();
    let retried = store.unsent_outbox(10).await.unwrap();
    assert_eq!(retried[0].attempts, 2);
    assert_eq!(retried[0].last_error.as_deref(), Some("redis still down"));

    store.mark_sent(outbox[0].id).await.unwrap();
    let left = store.unsent_outbox(10).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].version, 2);
    assert_eq!(store.unsent_outbox(0).await.unwrap().len(), 0);
}

#[tokio::test]
async fn reopening_the_file_keeps_every_event() {
    let dir = TempDir::new();
    let store = dir.store().await;
    let events = vec![
        published(1, FAST, "seed"),
        rejected(),
        published(2, LONG, "push"),
    ];
    let before = store
        .append(REGISTRY_STREAM, 0, &events, "seed")
        .await
        .unwrap();
    store.close().await;

    let reopened = dir.store().await;
    assert_eq!(reopened.load(REGISTRY_STREAM).await.unwrap(), before);
    assert_eq!(reopened.unsent_outbox(10).await.unwrap().len(), 2);
    // And the log carries on from where it was.
    let next = reopened
        .append(REGISTRY_STREAM, 3, &[published(3, FAST, "push")], "alice")
        .await
        .unwrap();
    assert_eq!(next[0].stream_sequence, 4);
}

#[tokio::test]
async fn events_after_pages_through_the_global_log() {
    let dir = TempDir::new();
    let store = dir.store().await;
    store
        .append(
            REGISTRY_STREAM,
            0,
            &[published(1, FAST, "seed"), rejected()],
            "seed",
        )
        .await
        .unwrap();
    store
        .append("other", 0, &[rejected()], "ops")
        .await
        .unwrap();
    let first = store.events_after(0, 2).await.unwrap();
    assert_eq!(
        first.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        vec![1, 2]
    );
    let rest = store.events_after(2, 10).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].actor, "ops");
    assert!(store.events_after(3, 10).await.unwrap().is_empty());
}

async fn insert_raw(store: &super::EventStore, event_type: &str, schema_version: i64) {
    sqlx::query(
        "INSERT INTO events (stream, stream_sequence, event_type, schema_version, payload, \
         actor, recorded_at) VALUES (?, 2, ?, ?, ?, 'mallory', 'now')",
    )
    .bind(REGISTRY_STREAM)
    .bind(event_type)
    .bind(schema_version)
    .bind(serde_json::to_string(&rejected()).unwrap())
    .execute(store.pool())
    .await
    .unwrap();
}

#[tokio::test]
async fn an_unknown_event_type_is_corrupt_not_a_panic() {
    let dir = TempDir::new();
    let store = dir.store().await;
    store
        .append(REGISTRY_STREAM, 0, &[published(1, FAST, "seed")], "seed")
        .await
        .unwrap();
    insert_raw(&store, "RegistryExploded", 1).await;
    let err = store.load(REGISTRY_STREAM).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Corrupt { sequence: 2, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("event 2"), "{err}");
    assert!(err.to_string().contains("RegistryExploded"), "{err}");
    assert!(matches!(
        store.events_after(0, 10).await,
        Err(StoreError::Corrupt { sequence: 2, .. })
    ));
}

#[tokio::test]
async fn an_unknown_schema_version_is_corrupt() {
    let dir = TempDir::new();
    let store = dir.store().await;
    store
        .append(REGISTRY_STREAM, 0, &[published(1, FAST, "seed")], "seed")
        .await
        .unwrap();
    insert_raw(&store, "RegistryReloadRejected", 99).await;
    let err = store.load(REGISTRY_STREAM).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Corrupt { sequence: 2, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("schema version 99"), "{err}");
}

#[tokio::test]
async fn open_creates_missing_directories() {
    let dir = TempDir::new();
    let path = dir.path().join("nested/deeper/cp.db");
    let store = super::EventStore::open(&path).await.unwrap();
    assert!(store.load(REGISTRY_STREAM).await.unwrap().is_empty());
    assert!(path.exists());
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(mode, "wal");
}

/// Caps every connection the pool holds at the pages the file has now (`Some`), or lifts the
/// cap (`None`): SQLite then answers SQLITE_FULL exactly as on a full disk. The pool hands
/// idle connections out in turn, so holding all of them at once reaches each.
async fn cap_pages(store: &super::EventStore, cap: bool) {
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut conn = store.pool().acquire().await.unwrap();
        let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        let limit = if cap { pages } else { 1 << 30 };
        sqlx::query(&format!("PRAGMA max_page_count = {limit}"))
            .execute(&mut *conn)
            .await
            .unwrap();
        held.push(conn);
    }
}

/// A registry document big enough to need new pages.
fn big(version: u64) -> RegistryEvent {
    let description = "x".repeat(64 * 1024);
    let text = format!(
        "aliases:\n  mana/big:\n    description: {description}{version}\n    chain: [ollama/a]\n"
    );
    published(version, &text, "push")
}

#[tokio::test]
async fn a_full_disk_fails_one_append_and_the_next_works_once_space_is_back() {
    let dir = TempDir::new();
    let store = dir.store().await;
    store
        .append(REGISTRY_STREAM, 0, &[published(1, FAST, "seed")], "seed")
        .await
        .unwrap();

    cap_pages(&store, true).await;
    let full = store.append(REGISTRY_STREAM, 1, &[big(2)], "alice").await;
    assert!(
        matches!(
            full,
            Err(StoreError::Unavailable {
                cause: StorageFault::DiskFull,
                ..
            })
        ),
        "{full:?}"
    );
    // Reads keep working while writes cannot.
    assert_eq!(store.load(REGISTRY_STREAM).await.unwrap().len(), 1);

    // Space is back: every connection the pool still holds takes the next writes (a
    // connection left mid-transaction would fail with "non-zero transaction depth").
    cap_pages(&store, false).await;
    for n in 2..=6 {
        store
            .append(REGISTRY_STREAM, n - 1, &[big(n)], "alice")
            .await
            .unwrap_or_else(|e| panic!("append {n}: {e}"));
    }
    assert_eq!(store.load(REGISTRY_STREAM).await.unwrap().len(), 6);
}

#[tokio::test]
async fn a_held_write_lock_is_reported_as_locked() {
    let dir = TempDir::new();
    let store = dir.store().await;
    // Another process holding the write lock past the busy timeout.
    let other = dir.store().await;
    let mut conn = other.pool().acquire().await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut *conn)
        .await
        .unwrap();
    let locked = store
        .append(REGISTRY_STREAM, 0, &[published(1, FAST, "seed")], "seed")
        .await;
    assert!(
        matches!(
            locked,
            Err(StoreError::Unavailable {
                cause: StorageFault::Locked,
                ..
            })
        ),
        "{locked:?}"
    );
    sqlx::query("ROLLBACK").execute(&mut *conn).await.unwrap();
    store
        .append(REGISTRY_STREAM, 0, &[published(1, FAST, "seed")], "seed")
        .await
        .unwrap();
}
