//! The admin console in a real headless Chromium (the system package, driven by
//! playwright-core) against a real control plane with an admin token, two workers and a real
//! redis-server. The browser side, with every assertion and its message, is
//! tests/clients/console.mjs; this side starts the cluster, runs the script and checks its
//! last line, and that the admin token never reached the control plane's log.

use std::path::Path;
use std::time::Duration;

use crate::clients::node_scripts;
use crate::fleet::Cluster;

const TOKEN: &str = "console-e2e-admin-token-5f0c";

/// Installs are done beforehand (scripts/test), so the walk through every page takes seconds;
/// the rest is slack for a busy 2-core machine.
const DEADLINE: Duration = Duration::from_secs(180);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_does_every_task_in_the_browser() {
    // Beats every half second, so the fleet page sees a push reach both workers quickly.
    let cluster =
        Cluster::start_with_admin_token(2, &[("MANA_LLM_HEARTBEAT_INTERVAL", "0.5")], Some(TOKEN))
            .await;
    let screenshots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/console-screenshots");
    std::fs::create_dir_all(&screenshots).unwrap();
    let mut command = tokio::process::Command::new("node");
    command
        .arg(node_scripts().join("console.mjs"))
        .env("MANA_LLM_CONSOLE_URL", &cluster.control_plane.url)
        .env("MANA_LLM_ADMIN_TOKEN", TOKEN)
        .env("MANA_LLM_SCREENSHOTS", &screenshots)
        .kill_on_drop(true);
    let output = tokio::time::timeout(DEADLINE, command.output())
        .await
        .unwrap_or_else(|_| panic!("console.mjs: no result within {DEADLINE:?}"))
        .unwrap_or_else(|e| panic!("cannot run node: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let logs = cluster.control_plane.logs();
    assert!(
        output.status.success() && stdout.trim_end().ends_with("CONSOLE OK"),
        "console.mjs failed ({}):\n{stdout}\n{stderr}\ncontrol plane log:\n{logs}",
        output.status
    );
    assert!(
        !logs.contains(TOKEN),
        "the admin token reached the control plane's log:\n{logs}"
    );
    assert!(logs.contains("console sign-in"), "{logs}");
}
