//! Memory bounded by design: a worker in a 256 MiB memory cgroup (what deploy/k8s ships)
//! survives eight concurrent 31 MB requests; each is answered or refused with a 503.

use std::path::PathBuf;
use std::time::Duration;

use crate::support::*;

const LIMIT: u64 = 256 * 1024 * 1024;

/// A memory cgroup with a 256 MiB limit and no swap, removed on drop.
struct MemoryCgroup(PathBuf);

impl MemoryCgroup {
    /// cgroup v2 where its memory controller is available, else v1's memory hierarchy.
    fn create() -> Result<MemoryCgroup, String> {
        let name = format!("mana-llm-test-{}", std::process::id());
        let v2 = std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers")
            .is_ok_and(|c| c.split_whitespace().any(|c| c == "memory"));
        let (dir, files): (PathBuf, &[(&str, String)]) = if v2 {
            (
                PathBuf::from("/sys/fs/cgroup").join(&name),
                &[
                    ("memory.max", LIMIT.to_string()),
                    ("memory.swap.max", "0".to_owned()),
                ],
            )
        } else if std::path::Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists() {
            (
                PathBuf::from("/sys/fs/cgroup/memory").join(&name),
                &[
                    ("memory.limit_in_bytes", LIMIT.to_string()),
                    ("memory.memsw.limit_in_bytes", LIMIT.to_string()),
                ],
            )
        } else {
            return Err("no cgroup memory controller (neither v2 nor v1) on this machine".into());
        };
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let cgroup = MemoryCgroup(dir);
        for (file, value) in files {
            // memsw/swap files are missing where swap accounting is off; no swap then anyway.
            let path = cgroup.0.join(file);
            if path.exists() {
                std::fs::write(&path, value).map_err(|e| format!("{}: {e}", path.display()))?;
            }
        }
        Ok(cgroup)
    }

    fn procs(&self) -> PathBuf {
        self.0.join("cgroup.procs")
    }
}

impl Drop for MemoryCgroup {
    fn drop(&mut self) {
        // The gateway was killed and reaped before this runs (it is dropped first).
        let _ = std::fs::remove_dir(&self.0);
    }
}

fn big_chat(n: usize) -> Vec<u8> {
    let content = "a".repeat(31_000_000 - 200 - n);
    serde_json::to_vec(&chat("echo/echo", &content)).unwrap()
}

#[tokio::test]
async fn a_worker_in_256_mib_survives_eight_concurrent_31_mb_requests() {
    let cgroup = match MemoryCgroup::create() {
        Ok(c) => c,
        Err(reason) => {
            eprintln!(
                "SKIPPED a_worker_in_256_mib_survives_eight_concurrent_31_mb_requests: {reason}"
            );
            return;
        }
    };
    // No MANA_LLM_BODY_BUDGET_MB: the default follows the cgroup's limit.
    let mut gw = Gateway::builder().in_cgroup(&cgroup.procs()).start();
    let requests = (0..8).map(|n| {
        let (url, body) = (gw.url("/v1/chat/completions"), big_chat(n));
        tokio::spawn(async move {
            let r = client()
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await;
            match r {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let retry = r.headers().contains_key("retry-after");
                    let text = r.text().await.unwrap_or_default();
                    let code = serde_json::from_str::<serde_json::Value>(&text)
                        .ok()
                        .and_then(|v| v["error"]["code"].as_str().map(str::to_owned));
                    Ok((status, retry, code, text.len()))
                }
                Err(e) => Err(e.to_string()),
            }
        })
    });
    let mut answers = Vec::new();
    for r in requests.collect::<Vec<_>>() {
        answers.push(r.await.unwrap());
    }
    let alive = gw.wait_exit(Duration::from_millis(100)).is_none();
    assert!(
        alive,
        "the worker died (OOM-killed?): {answers:?}\n{}",
        gw.logs()
    );
    let mut served = 0;
    for answer in &answers {
        match answer {
            Ok((200, _, _, len)) => {
                assert!(*len > 30_000_000, "{answer:?}");
                served += 1;
            }
            Ok((503, retry, Some(code), _)) if code == "body_budget_exhausted" => {
                assert!(retry, "a refusal says when to retry");
            }
            other => panic!("neither served nor refused cleanly: {other:?}; all: {answers:?}"),
        }
    }
    assert!(served >= 1, "{answers:?}");
    assert_eq!(gw.get("/health").await.status, 200);
    let text = gw.get("/metrics").await.text;
    let refused = metric(&text, "mana_llm_body_budget_refused_total", &[]).unwrap_or(0.0);
    assert_eq!(refused as usize, 8 - served, "{answers:?}");
}
