//! The admin answers through the real router, without a socket: each reads back into its
//! contract type, and each carries exactly the keys (null or absent) the CLI, the console and
//! scripts have always seen.

use axum::http::StatusCode;
use mana_llm_shared::rollout::{CanaryShare, JudgeSettings};
use mana_llm_shared::{DocumentFormat, RegistryVersion};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::tests::{admin, call, local};
use crate::contract::{AuditPage, DiffView, Published, VersionView, VersionsPage, Written};
use crate::domain::tests::{FAST, LONG};
use crate::domain::Command;
use crate::service::RegistryService;
use crate::store::testutil::TempDir;

async fn get(app: &axum::Router, uri: &str) -> Value {
    let (status, body) = call(app, local("GET", uri, &[], "")).await;
    assert_eq!(status, StatusCode::OK, "{uri}: {body}");
    body
}

fn keys(value: &Value) -> Vec<&str> {
    value
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

fn read<T: DeserializeOwned>(body: &Value) -> T {
    serde_json::from_value(body.clone()).unwrap()
}

#[tokio::test]
async fn a_push_answers_written_with_a_null_reach_without_a_fleet() {
    let dir = TempDir::new();
    let app = admin(&dir, None).await;
    let (status, body) = call(&app, local("POST", "/admin/v1/registry", &[], LONG)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(keys(&body), ["changed", "hash", "version", "workers"]);
    assert_eq!(body["workers"], Value::Null);
    let written: Written = read(&body);
    assert_eq!(written.published.version, RegistryVersion(2));
    assert!(written.published.changed);

    let (status, body) = call(&app, local("POST", "/admin/v1/registry", &[], LONG)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let unchanged: Published = read(&body);
    assert_eq!(
        (unchanged.version, unchanged.changed),
        (RegistryVersion(2), false)
    );
    assert_eq!(unchanged.hash, written.published.hash);
}

#[tokio::test]
async fn a_version_view_has_every_key_and_reads_back() {
    let dir = TempDir::new();
    let app = admin(&dir, None).await;
    let body = get(&app, "/admin/v1/registry").await;
    assert_eq!(
        keys(&body),
        [
            "actor",
            "aliases",
            "default",
            "document",
            "hash",
            "recorded_at",
            "rolled_back_to",
            "rollout",
            "source",
            "version"
        ]
    );
    assert_eq!(body["rollout"], Value::Null);
    assert_eq!(body["rolled_back_to"], Value::Null);
    assert_eq!(keys(&body["aliases"][0]), ["chain", "description", "name"]);
    let view: VersionView = read(&body);
    assert_eq!(view.default.as_deref(), Some("mana/fast"));
    assert_eq!(view.aliases[0].chain.len(), 2);
    assert!(view.document.is_some());

    let page = get(&app, "/admin/v1/registry/versions").await;
    assert_eq!(keys(&page), ["next_after", "versions"]);
    assert_eq!(
        keys(&page["versions"][0]),
        [
            "actor",
            "alias_count",
            "hash",
            "recorded_at",
            "rollout",
            "source",
            "version"
        ]
    );
    let page: VersionsPage = read(&page);
    assert_eq!(page.versions[0].alias_count, Some(1));
}

#[tokio::test]
async fn a_diff_names_the_default_change_as_an_object() {
    let dir = TempDir::new();
    let app = admin(&dir, None).await;
    call(&app, local("POST", "/admin/v1/registry", &[], LONG)).await;
    let body = get(&app, "/admin/v1/registry/diff?from=1&to=2").await;
    assert_eq!(
        keys(&body),
        [
            "added",
            "changed",
            "default_changed",
            "from",
            "providers_changed",
            "removed",
            "to"
        ]
    );
    assert_eq!(
        body["default_changed"],
        serde_json::json!({"from": "mana/fast", "to": null})
    );
    let view: DiffView = read(&body);
    assert_eq!(
        (view.from, view.to),
        (RegistryVersion(1), RegistryVersion(2))
    );
    assert_eq!(view.diff.added, ["mana/long"]);
}

async fn rolled_out(service: &RegistryService, promote: bool) {
    let start = Command::StartRollout {
        text: LONG.to_owned(),
        format: DocumentFormat::Yaml,
        origin: "admin API".to_owned(),
        expected_version: None,
        share: CanaryShare::Percent(50),
        live_workers: vec!["w1".into(), "w2".into()],
        judge: JudgeSettings::default(),
    };
    service.execute(start, "admin").await.unwrap();
    let end = Command::EndRollout {
        candidate: None,
        promote,
        decided_by: "admin".to_owned(),
        reason: "checked by hand".to_owned(),
        figures: None,
    };
    service.execute(end, "admin").await.unwrap();
}

#[tokio::test]
async fn audit_rows_carry_each_rollout_kind_s_own_keys() {
    for (promote, decision_keys) in [
        (true, vec!["decided_by", "figures", "outcome", "reason"]),
        (
            false,
            vec![
                "decided_by",
                "figures",
                "outcome",
                "reason",
                "stable_version",
            ],
        ),
    ] {
        let dir = TempDir::new();
        let service = RegistryService::open(dir.store().await).await.unwrap();
        service.seed_if_empty(FAST, "test").await.unwrap();
        rolled_out(&service, promote).await;
        let app = super::router(std::sync::Arc::new(super::AdminState {
            service,
            token: None,
            aliases_path: None,
            fleet: None,
            rollouts: crate::rollout::Watch::new(Default::default()),
        }));
        let body = get(&app, "/admin/v1/audit").await;
        let events = body["events"].as_array().unwrap();
        assert_eq!(events.len(), 3, "{body}");
        assert_eq!(
            keys(&events[0]),
            [
                "actor",
                "errors",
                "hash",
                "recorded_at",
                "registry_version",
                "sequence",
                "source",
                "to_version",
                "type"
            ],
            "no rollout key on a publish"
        );
        assert_eq!(
            keys(&events[1]["rollout"]),
            ["cohort", "judge", "share", "stable_version"]
        );
        assert_eq!(keys(&events[2]["rollout"]), decision_keys);
        assert_eq!(events[2]["rollout"]["figures"], Value::Null);
        let page: AuditPage = read(&body);
        let decision = page.events[2].rollout.clone().unwrap();
        assert_eq!(decision.figures, Some(None), "a null stays present");
        assert_eq!(decision.reason.as_deref(), Some("checked by hand"));
    }
}

/// A router over a log holding one version and a fleet of two live workers, `w1` on the
/// current version and `w2` behind with an open breaker.
async fn with_fleet(dir: &TempDir) -> (axum::Router, RegistryService) {
    use mana_llm_shared::fleet::{Beat, Beats, MemoryBeats};
    let service = RegistryService::open(dir.store().await).await.unwrap();
    service.seed_if_empty(FAST, "test").await.unwrap();
    let beats = std::sync::Arc::new(MemoryBeats::default());
    for (id, version, breaker) in [("w1", 1, "healthy"), ("w2", 0, "open")] {
        let beat = Beat {
            worker_id: id.to_owned().into(),
            listen: "127.0.0.1:1".to_owned(),
            binary_version: "test".to_owned(),
            registry_version: mana_llm_shared::RegistryVersion(version),
            started_at: 1.0,
            beat_at: 2.0,
            ttl: 60.0,
            in_flight: 0,
            windows: Default::default(),
            breakers: [("ollama".to_owned(), breaker.to_owned())].into(),
        };
        beats.write(&beat, std::time::Duration::from_secs(60)).await;
    }
    let app = super::router(std::sync::Arc::new(super::AdminState {
        service: service.clone(),
        token: None,
        aliases_path: None,
        fleet: Some(beats),
        rollouts: crate::rollout::Watch::new(Default::default()),
    }));
    (app, service)
}

#[tokio::test]
async fn the_fleet_view_and_a_version_s_progress_read_back() {
    use crate::contract::{FleetView, Progress};
    let dir = TempDir::new();
    let (app, _) = with_fleet(&dir).await;
    let body = get(&app, "/admin/v1/fleet").await;
    assert_eq!(
        keys(&body),
        [
            "current_version",
            "live",
            "providers",
            "rollout",
            "serving_current",
            "workers"
        ]
    );
    assert_eq!(
        body["providers"]["ollama"],
        serde_json::json!({"healthy": 1, "half_open": 0, "open": 1})
    );
    assert_eq!(body["workers"][0]["cohort"], Value::Null);
    assert_eq!(keys(&body["workers"][0]).len(), 13, "{body}");
    let view: FleetView = read(&body);
    assert_eq!((view.live, view.serving_current), (2, 1));
    assert!(view.workers[1].lagging);

    let body = get(&app, "/admin/v1/registry/versions/1/rollout").await;
    assert_eq!(
        keys(&body),
        ["complete", "live", "serving", "version", "workers"]
    );
    let progress: Progress = read(&body);
    assert!(!progress.complete);
    assert_eq!(progress.workers[1].worker_id.as_str(), "w2");
}

#[tokio::test]
async fn a_rollout_reads_back_from_start_to_abort() {
    use crate::contract::{Ended, Started, Status};
    let dir = TempDir::new();
    let (app, _) = with_fleet(&dir).await;
    let (status, body) = call(
        &app,
        local("POST", "/admin/v1/registry?canary=50%25", &[], LONG),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        keys(&body),
        ["changed", "hash", "rollout", "stable_version", "version"]
    );
    assert_eq!(keys(&body["rollout"]).len(), 15, "{body}");
    assert_eq!(
        keys(&body["rollout"]["figures"]["candidate"]).len(),
        8,
        "{body}"
    );
    let started: Started = read(&body);
    assert_eq!(
        (started.version, started.stable_version),
        (RegistryVersion(2), RegistryVersion(1))
    );

    let status_body = get(&app, "/admin/v1/rollout").await;
    let status: Status = read(&status_body);
    assert_eq!(
        status.active.map(|a| a.candidate_version),
        Some(RegistryVersion(2))
    );

    let (code, body) = call(
        &app,
        local(
            "POST",
            "/admin/v1/rollout/abort",
            &[],
            r#"{"reason": "no"}"#,
        ),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(
        keys(&body["rollout"]),
        [
            "at",
            "candidate_version",
            "decided_by",
            "figures",
            "outcome",
            "reason",
            "stable_version"
        ]
    );
    let ended: Ended = read(&body);
    let last = ended.rollout.unwrap();
    assert_eq!(
        (last.outcome.as_str(), last.reason.as_str()),
        ("aborted", "no")
    );
}
