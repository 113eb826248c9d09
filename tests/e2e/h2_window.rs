//! HTTP/2 flow control cannot pin a worker's memory: a client that opens many streams asking
//! for large answers and never opens its receive window gets each answered or refused, and
//! the worker's memory stays within a small multiple of its request-body budget.

use std::time::Duration;

use crate::support::*;

/// Resident memory of `pid` in bytes, from /proc.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap()
}

const BUDGET_MB: u64 = 16;
const STREAMS: usize = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_window_client_cannot_pin_memory_past_the_budget() {
    let gw = Gateway::builder()
        .env("MANA_LLM_BODY_BUDGET_MB", BUDGET_MB.to_string())
        .env("MANA_LLM_BODY_LIMIT_MB", "2")
        .start();
    // Warm: the first request sets up what every request uses.
    assert_eq!(
        gw.post("/v1/chat/completions", chat("echo/w", "warm"))
            .await
            .status,
        200
    );
    let before = rss(gw.pid());

    let addr = gw.url.trim_start_matches("http://").to_owned();
    let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    // A window of zero: the server may send headers, never a byte of any answer's body.
    let (client, connection) = h2::client::Builder::new()
        .initial_window_size(0)
        .max_concurrent_streams(1000)
        .handshake::<_, bytes::Bytes>(tcp)
        .await
        .unwrap();
    let driver = tokio::spawn(connection);
    let prompt = "x".repeat(1024 * 1024);
    let body = serde_json::to_vec(&chat("echo/w", &prompt)).unwrap();
    let mut pending = Vec::new();
    for _ in 0..STREAMS {
        let mut client = client.clone().ready().await.unwrap();
        let request = http::Request::post(format!("http://{addr}/v1/chat/completions"))
            .header("content-type", "application/json")
            .header("content-length", body.len().to_string())
            .body(())
            .unwrap();
        let (response, send) = client.send_request(request, false).unwrap();
        pending.push((response, send));
    }
    // Upload every body (the server's receive window allows it), then read only the heads.
    let mut statuses = Vec::new();
    for (response, mut send) in pending {
        let body = bytes::Bytes::from(body.clone());
        // Capacity is asked for one stream at a time: reserved on all at once, the
        // connection's window would be spread over streams that are not sending yet.
        send.reserve_capacity(body.len());
        let mut offset = 0;
        while offset < body.len() {
            let capacity = tokio::time::timeout(
                Duration::from_secs(20),
                std::future::poll_fn(|cx| send.poll_capacity(cx)),
            )
            .await;
            let Ok(Some(Ok(n))) = capacity else { break };
            let end = (offset + n).min(body.len());
            if send
                .send_data(body.slice(offset..end), end == body.len())
                .is_err()
            {
                break;
            }
            offset = end;
        }
        let head = tokio::time::timeout(Duration::from_secs(20), response)
            .await
            .expect("every stream gets an answer's head")
            .map(|r| r.status().as_u16())
            .unwrap_or(0);
        statuses.push(head);
    }
    let after = rss(gw.pid());
    let served = statuses.iter().filter(|s| **s == 200).count();
    let refused = statuses.iter().filter(|s| **s == 503).count();
    eprintln!(
        "{served} served, {refused} refused, {} reset; RSS {} → {} MiB",
        STREAMS - served - refused,
        before >> 20,
        after >> 20
    );
    assert!(served >= 1, "{statuses:?}");
    assert!(refused >= 1, "the budget refused the excess: {statuses:?}");
    // Each admitted stream holds its body, the parsed request and its built answer: a few
    // times the budget at most. Fifty admitted would be well past it.
    let growth = after.saturating_sub(before);
    assert!(
        growth < BUDGET_MB * 8 * 1024 * 1024,
        "RSS grew by {} MiB with a {BUDGET_MB} MiB budget",
        growth >> 20
    );
    drop(client);
    driver.abort();
    // The worker still answers other clients.
    assert!(
        eventually_async(Duration::from_secs(10), || async {
            gw.post("/v1/chat/completions", chat("echo/w", "still here"))
                .await
                .status
                == 200
        })
        .await
    );
}
