//! A failing disk under the control plane: its database on a tiny tmpfs that the test fills
//! up. Writes answer 503 naming the cause, reads keep working, and the first push after the
//! space is freed succeeds (the failed transaction must not poison a pooled connection).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::*;

const V1: &str = "aliases:\n  mana/a: {chain: [echo/one]}\n";

/// A tmpfs of `size` mounted on a fresh directory, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// `None` (with the reason) where this process may not mount filesystems.
    fn mount(size: &str) -> Result<Tmpfs, String> {
        let dir = temp_dir();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
        Ok(Tmpfs(dir))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes a file until the filesystem refuses (ENOSPC); returns its path.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 16 * 1024];
    while file.write_all(&chunk).is_ok() {}
    // The last partial chunk: one byte at a time until nothing fits.
    while file.write_all(&[0]).is_ok() {}
    let _ = file.sync_all();
    path
}

/// A document bigger than any free space a full tmpfs could have left.
fn big(n: u32) -> String {
    let description = "x".repeat(256 * 1024);
    format!("aliases:\n  mana/a:\n    description: d{n}{description}\n    chain: [echo/v{n}]\n")
}

async fn push(cp: &Gateway, body: &str) -> Reply {
    cp.send(
        client()
            .post(cp.url("/admin/v1/registry"))
            .body(body.to_owned()),
    )
    .await
}

#[tokio::test]
async fn a_full_disk_answers_503_and_the_next_push_after_freeing_space_works() {
    let tmpfs = match Tmpfs::mount("4m") {
        Ok(t) => t,
        Err(reason) => panic!(
            "this test needs to mount a tmpfs (run as root, or with CAP_SYS_ADMIN): {reason}"
        ),
    };
    let aliases = temp_file("aliases.yaml", V1);
    let mut cp = Gateway::control_plane()
        .env("MANA_LLM_ALIASES", aliases.to_string_lossy())
        .start_with_db(&tmpfs.path().join("cp.db"));
    assert_eq!(push(&cp, &big(2)).await.status, 201);

    let filler = fill(tmpfs.path());
    for n in 3..=4 {
        let full = push(&cp, &big(n)).await;
        full.assert_error(503, "storage_unavailable");
        assert_eq!(full.json["error"]["cause"], "disk_full", "{}", full.text);
        let message = full.json["error"]["message"].as_str().unwrap();
        assert!(message.contains("full"), "{message}");
    }
    // Reads keep working while writes cannot.
    let current = cp.get("/admin/v1/registry").await;
    assert_eq!(current.status, 200, "{}", current.text);
    assert_eq!(current.json["version"], 2);
    assert_eq!(cp.get("/admin/v1/audit").await.status, 200);

    std::fs::remove_file(filler).unwrap();
    for n in 3..=6 {
        let pushed = push(&cp, &big(n)).await;
        assert_eq!(
            pushed.status, 201,
            "push {n} after freeing space: {}",
            pushed.text
        );
    }
    assert_eq!(cp.get("/admin/v1/registry").await.json["version"], 6);
    cp.signal("TERM");
    assert_eq!(cp.wait_exit(std::time::Duration::from_secs(15)), Some(0));
}
