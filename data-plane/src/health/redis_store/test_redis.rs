//! A throwaway `redis-server` for tests: its own free port, no persistence, killed on drop.
//! Never the machine's own Redis.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mana_llm_shared::bus::BusNames;
use prometheus::{IntCounterVec, IntGauge, Opts};

use crate::redis::SharedRedis;

pub struct TestRedis {
    port: u16,
    child: Option<Child>,
}

impl TestRedis {
    pub fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let mut redis = Self { port, child: None };
        redis.spawn(None);
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The server on the same port again, empty; with `password` set, only a client that
    /// knows it gets in until a test lifts it.
    pub fn restart(&mut self, password: Option<&str>) {
        self.kill();
        self.spawn(password);
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn spawn(&mut self, password: Option<&str>) {
        let port = self.port.to_string();
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &port, "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "no"]);
        if let Some(password) = password {
            cmd.args(["--requirepass", password]);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed for these tests");
        let pid = child.id();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        // Ours, not whoever took the port since it was picked or last used (a restart reuses
        // it): a stranger would answer the PING just as well.
        while !(self.answers() && listens_on(pid, self.port)) {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("redis-server exited ({status}) instead of listening on port {}: taken by another process?", self.port);
            }
            assert!(Instant::now() < deadline, "redis-server did not come up");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether the server answers a PING (a NOAUTH refusal counts: it is up).
    fn answers(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        let mut reply = [0u8; 16];
        s.write_all(b"PING\r\n").is_ok()
            && s.read(&mut reply).is_ok_and(|n| {
                reply[..n].starts_with(b"+PONG") || reply[..n].starts_with(b"-NOAUTH")
            })
    }
}

/// Whether process `pid` holds the listening socket on 127.0.0.1:`port` (`/proc/net/tcp`
/// and the process's file descriptors).
fn listens_on(pid: u32, port: u16) -> bool {
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return false;
    };
    let local = format!("0100007F:{port:04X}");
    let sockets: Vec<String> = table
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f.len() > 9 && f[1] == local && f[3] == "0A")
        .map(|f| format!("socket:[{}]", f[9]))
        .collect();
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path())
            .is_ok_and(|target| sockets.iter().any(|s| target.to_string_lossy() == *s))
    })
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A worker's connection to `url` under a fresh prefix (or `names`, to share one).
pub fn shared_redis(url: &str, names: &BusNames) -> Arc<SharedRedis> {
    let up = IntGauge::new("redis_up", "test").unwrap();
    let errors = IntCounterVec::new(Opts::new("redis_errors", "test"), &["op"]).unwrap();
    let client = redis::Client::open(url).unwrap();
    crate::redis::connect(
        client,
        names.clone(),
        Duration::from_millis(200),
        up,
        errors,
    )
}

pub fn fresh_names() -> BusNames {
    BusNames::new(&format!("test-{}", uuid::Uuid::new_v4().simple()))
}

/// Polls `check` every few milliseconds until it holds; fails the test after `within`.
pub async fn eventually(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
