//! Connection bounds against the real binary: slowloris and idle connections are closed
//! after their timeouts while a legitimate client keeps being served, the connection cap
//! refuses cleanly, and SIGTERM does not wait for half-sent requests.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::*;

fn addr(gw: &Gateway) -> String {
    gw.url.trim_start_matches("http://").to_owned()
}

/// A raw connection whose reads never block, so a test can poll it.
fn connect(gw: &Gateway) -> TcpStream {
    let tcp = TcpStream::connect(addr(gw)).unwrap();
    tcp.set_nonblocking(true).unwrap();
    tcp
}

/// Whether the server closed `tcp` (EOF or reset); bytes it sent are collected into `seen`.
fn closed(tcp: &mut TcpStream, seen: &mut Vec<u8>) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match tcp.read(&mut buf) {
            Ok(0) => return true,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
}

#[tokio::test]
async fn slowloris_and_idle_connections_are_closed_while_a_real_client_is_served() {
    let gw = Gateway::builder()
        .env("MANA_LLM_HEADER_TIMEOUT", "1")
        .env("MANA_LLM_IDLE_TIMEOUT", "3")
        .start();
    let mut slow: Vec<TcpStream> = (0..50).map(|_| connect(&gw)).collect();
    let mut idle: Vec<TcpStream> = (0..50).map(|_| connect(&gw)).collect();
    for tcp in &mut slow {
        tcp.write_all(b"GET /health HTTP/1.1\r\n").unwrap();
    }
    let start = Instant::now();
    let (mut slow_closed, mut idle_closed) = (vec![None; 50], vec![None; 50]);
    let mut served = 0;
    while start.elapsed() < Duration::from_secs(15)
        && (slow_closed.iter().any(Option::is_none) || idle_closed.iter().any(Option::is_none))
    {
        // One header byte per connection every round: never a complete head.
        for (i, tcp) in slow.iter_mut().enumerate() {
            if slow_closed[i].is_none() {
                let _ = tcp.write_all(b"X");
                if closed(tcp, &mut Vec::new()) {
                    slow_closed[i] = Some(start.elapsed());
                }
            }
        }
        for (i, tcp) in idle.iter_mut().enumerate() {
            if idle_closed[i].is_none() && closed(tcp, &mut Vec::new()) {
                idle_closed[i] = Some(start.elapsed());
            }
        }
        let r = gw
            .post("/v1/chat/completions", chat("echo/echo", "hi"))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        served += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let slow_max = slow_closed
        .iter()
        .map(|c| c.expect("a slowloris connection was never closed"))
        .max();
    let idle_min = idle_closed
        .iter()
        .map(|c| c.expect("an idle connection was never closed"))
        .min();
    // Closed by their own timeouts: the slow heads at ~1 s, the idle ones not before ~3 s.
    assert!(
        slow_max.unwrap() < Duration::from_secs(5),
        "{slow_closed:?}"
    );
    assert!(
        idle_min.unwrap() >= Duration::from_millis(2500),
        "{idle_closed:?}"
    );
    assert!(served >= 20, "the real client got {served} answers");
    let r = gw.get("/health").await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn past_the_connection_cap_new_connections_get_a_503_and_open_ones_keep_working() {
    let gw = Gateway::builder()
        .env("MANA_LLM_MAX_CONNECTIONS", "8")
        .start();
    let mut open: Vec<TcpStream> = (0..8).map(|_| connect(&gw)).collect();
    // Each is accepted and served before the next is counted.
    for tcp in &mut open {
        tcp.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
    }
    for tcp in &mut open {
        let mut seen = Vec::new();
        assert!(
            eventually(Duration::from_secs(5), || {
                let _ = closed(tcp, &mut seen);
                seen.starts_with(b"HTTP/1.1 200")
            })
            .await,
            "{}",
            String::from_utf8_lossy(&seen)
        );
    }
    let mut extra = connect(&gw);
    let mut refused = Vec::new();
    assert!(eventually(Duration::from_secs(5), || closed(&mut extra, &mut refused)).await);
    let text = String::from_utf8_lossy(&refused);
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(text.contains("retry-after: 1"), "{text}");
    let body: serde_json::Value =
        serde_json::from_str(text.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "too_many_connections");

    // The connections already open keep being served.
    let tcp = &mut open[3];
    tcp.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut seen = Vec::new();
    assert!(
        eventually(Duration::from_secs(5), || {
            let _ = closed(tcp, &mut seen);
            seen.starts_with(b"HTTP/1.1 200")
        })
        .await
    );
    // Closing some frees their slots for new clients.
    drop(open.drain(..4).collect::<Vec<_>>());
    let freed = eventually_async(Duration::from_secs(5), || async {
        let r = client().get(gw.url("/health")).send().await;
        r.is_ok_and(|r| r.status() == 200)
    })
    .await;
    assert!(freed);
}

#[tokio::test]
async fn sigterm_with_a_half_sent_request_exits_once_the_in_flight_request_is_done() {
    let mut gw = Gateway::builder()
        .env("MANA_LLM_ECHO_DELAY_MS", "1500")
        .env("MANA_LLM_DRAIN_SECONDS", "60")
        .env("MANA_LLM_HEADER_TIMEOUT", "60")
        .start();
    let mut half = connect(&gw);
    half.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Ty")
        .unwrap();
    let mut idle = connect(&gw);
    let url = gw.url("/v1/chat/completions");
    let in_flight = tokio::spawn(async move {
        client()
            .post(url)
            .json(&chat("echo/echo", "slow answer"))
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    // The echo answer takes 1.5 s; signal while it is being served.
    let serving = eventually_async(Duration::from_secs(5), || async {
        let text = gw.get("/metrics").await.text;
        metric(&text, "mana_llm_in_flight_requests", &[]).is_some_and(|n| n >= 1.0)
    })
    .await;
    assert!(serving, "the slow request never started");
    let signalled = Instant::now();
    gw.signal("TERM");
    // Idle and half-sent connections are closed at once, not after the drain.
    assert!(
        eventually(Duration::from_secs(2), || closed(
            &mut half,
            &mut Vec::new()
        ))
        .await
    );
    assert!(
        eventually(Duration::from_secs(2), || closed(
            &mut idle,
            &mut Vec::new()
        ))
        .await
    );
    assert_eq!(in_flight.await.unwrap().unwrap(), 200);
    let code = tokio::task::spawn_blocking(move || {
        let code = gw.wait_exit(Duration::from_secs(20));
        (code, gw)
    })
    .await
    .unwrap()
    .0;
    assert_eq!(code, Some(0));
    assert!(
        signalled.elapsed() < Duration::from_secs(8),
        "exit took {:?}; the drain allowed 60 s",
        signalled.elapsed()
    );
}
