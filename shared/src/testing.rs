//! Test support shared by this crate's tests and the end-to-end suite (feature `testing`):
//! a throwaway `redis-server`, and the port checks every spawned server waits on. Never the
//! machine's own Redis.
// Test code: a failure to set up is the test's failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port nothing listens on right now (it may be taken before it is used: callers check
/// with [`wait_listening`] that their server got it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether process `pid` holds the listening socket on 127.0.0.1:`port` (checked through
/// `/proc/net/tcp` and the process's file descriptors). A port picked as free and released
/// can be taken by someone else before our server binds it: then that server exits and a
/// plain connect would reach the stranger.
pub fn listens_on(pid: u32, port: u16) -> bool {
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return false;
    };
    let local = format!("0100007F:{port:04X}");
    let inodes: Vec<String> = table
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
            .is_ok_and(|target| inodes.iter().any(|i| target.to_string_lossy() == *i))
    })
}

/// Waits until `child` listens on 127.0.0.1:`port`. An error if it exits first (the port was
/// taken by another process); a panic if the deadline passes.
pub fn wait_listening(child: &mut Child, port: u16, what: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !listens_on(child.id(), port) {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "{what} exited ({status}) instead of listening on port {port}: taken by another process?"
            ));
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on port {port}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// A real `redis-server` on a free loopback port, no persistence, stopped on drop. It can be
/// stopped and started again on the same port to play an outage.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
    /// Arguments added at every (re)start: a password, ACL users, TLS.
    args: Vec<String>,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        Self::start_with(&[])
    }

    /// Starts with extra `redis-server` arguments, kept for restarts (`{port}` in them is the
    /// port picked). A later `--port 0` with `--tls-port` turns the plain port off (the last
    /// value of a directive wins).
    pub fn start_with(args: &[&str]) -> RedisServer {
        let mut last_error = String::new();
        // A port taken between picking and binding is picked again; on a restart it cannot
        // be (the test's clients know the port), and the restart fails clearly instead.
        for _ in 0..5 {
            let port = free_port();
            let args = args.iter().map(|a| a.replace("{port}", &port.to_string()));
            let mut server = RedisServer {
                port,
                child: None,
                args: args.collect(),
            };
            let args = server.args.clone();
            match server.spawn(&args.iter().map(String::as_str).collect::<Vec<_>>()) {
                Ok(()) => return server,
                Err(e) => last_error = e,
            }
        }
        panic!("redis-server did not start: {last_error}");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops it if it runs and starts it again on the same port, empty.
    pub fn restart(&mut self) {
        let args = self.args.clone();
        self.restart_with(&args.iter().map(String::as_str).collect::<Vec<_>>());
    }

    /// Starts again with a password: clients without it (the gateway) are refused until the
    /// test lifts it with `CONFIG SET requirepass ""`, so the test can subscribe first.
    pub fn restart_locked(&mut self, password: &str) {
        self.restart_with(&["--requirepass", password]);
    }

    fn restart_with(&mut self, extra: &[&str]) {
        self.stop();
        if let Err(e) = self.spawn(extra) {
            panic!("redis-server could not restart: {e}");
        }
    }

    fn spawn(&mut self, extra: &[&str]) -> Result<(), String> {
        let port = self.port.to_string();
        let mut child = Command::new("redis-server")
            .args(["--port", &port, "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "no"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/test installs it)");
        // Ours, not whoever else may have bound the port since it was picked or last used.
        wait_listening(&mut child, self.port, "redis-server")?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.answers() {
            assert!(Instant::now() < deadline, "redis-server did not answer");
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// Whether the server answers a PING. A TLS-only
    /// server has no plain port to ask: listening is all there is to check.
    fn answers(&self) -> bool {
        if self.args.iter().any(|a| a == "--tls-port") {
            return true;
        }
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        let mut reply = [0u8; 16];
        // Any reply, PONG or a refusal (NOAUTH): it is up and serving.
        s.write_all(b"PING\r\n").is_ok()
            && s.read(&mut reply)
                .is_ok_and(|n| n > 0 && (reply[0] == b'+' || reply[0] == b'-'))
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends a signal to the server (`STOP` freezes it as a paused VM would, `CONT` thaws it).
    pub fn signal(&self, name: &str) {
        let pid = self.child.as_ref().expect("redis-server running").id();
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// A connection for the test itself.
    pub async fn conn(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
