//! The watchdog's decisions, on paused time.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::activity::{Activity, Verdict};
use super::ConnLimits;

fn limits() -> ConnLimits {
    ConnLimits {
        header_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(60),
        ..ConnLimits::default()
    }
}

#[tokio::test(start_paused = true)]
async fn a_head_trickling_in_is_cut_at_the_header_timeout() {
    let start = Instant::now();
    let activity = Activity::new(start);
    activity.read(start, b"G");
    for s in 1..10 {
        activity.read(start + Duration::from_secs(s), b"E");
        assert!(matches!(
            activity.verdict(start + Duration::from_secs(s), &limits()),
            Verdict::Keep(_)
        ));
    }
    assert_eq!(
        activity.verdict(start + Duration::from_secs(10), &limits()),
        Verdict::Close("header_timeout")
    );
}

#[tokio::test(start_paused = true)]
async fn an_idle_connection_is_cut_at_the_idle_timeout_and_a_busy_one_never() {
    let start = Instant::now();
    let activity = Arc::new(Activity::new(start));
    assert_eq!(
        activity.verdict(start + Duration::from_secs(59), &limits()),
        Verdict::Keep(start + Duration::from_secs(60))
    );
    assert_eq!(
        activity.verdict(start + Duration::from_secs(60), &limits()),
        Verdict::Close("idle_timeout")
    );
    // A request in flight for ten minutes (a long answer) is not idle, nor a half-sent head.
    activity.read(start, b"GET / HTTP/1.1\r\n\r\n");
    let request = activity.start();
    let later = start + Duration::from_secs(600);
    assert!(matches!(
        activity.verdict(later, &limits()),
        Verdict::Keep(_)
    ));
    tokio::time::advance(Duration::from_secs(600)).await;
    drop(request);
    assert!(matches!(
        activity.verdict(Instant::now() + Duration::from_secs(59), &limits()),
        Verdict::Keep(_)
    ));
}

#[tokio::test(start_paused = true)]
async fn http2_pings_between_requests_are_not_a_slow_head() {
    let start = Instant::now();
    let activity = Activity::new(start);
    activity.read(start, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    activity.read(start + Duration::from_secs(30), b"ping");
    assert!(matches!(
        activity.verdict(start + Duration::from_secs(30), &limits()),
        Verdict::Keep(_)
    ));
    assert_eq!(
        activity.verdict(start + Duration::from_secs(90), &limits()),
        Verdict::Close("idle_timeout")
    );
}

#[test]
fn limits_come_from_the_environment_and_zero_is_refused() {
    use crate::settings::Source;
    let source = |pairs: &[(&str, &str)]| {
        Source::from_map(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    };
    assert_eq!(
        ConnLimits::from_source(&source(&[])).unwrap(),
        ConnLimits::default()
    );
    let set = ConnLimits::from_source(&source(&[
        ("MANA_LLM_MAX_CONNECTIONS", "10"),
        ("MANA_LLM_HEADER_TIMEOUT", "0.5"),
        ("MANA_LLM_H2_SEND_BUFFER_KB", "16"),
    ]))
    .unwrap();
    assert_eq!(set.max_connections, 10);
    assert_eq!(set.header_timeout, Duration::from_millis(500));
    assert_eq!(set.h2_send_buffer, 16 * 1024);
    for key in [
        "MANA_LLM_MAX_CONNECTIONS",
        "MANA_LLM_IDLE_TIMEOUT",
        "MANA_LLM_H2_MAX_STREAMS",
        "MANA_LLM_H2_WINDOW_KB",
    ] {
        let e = ConnLimits::from_source(&source(&[(key, "0")])).unwrap_err();
        assert_eq!(e.key, key);
    }
}
