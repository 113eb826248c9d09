//! What went wrong, as one line for stderr and an exit code (documented on [`super::run`]).

use reqwest::Url;
use serde::Deserialize;

pub const EXIT_INVALID: u8 = 1;
pub const EXIT_UNREACHABLE: u8 = 3;
pub const EXIT_UNAUTHORIZED: u8 = 4;
pub const EXIT_CONFLICT: u8 = 5;
pub const EXIT_NOT_FOUND: u8 = 6;
pub const EXIT_SERVER: u8 = 7;

/// Error bodies are quoted only this far, so an HTML error page stays one line's worth.
const SNIPPET_CHARS: usize = 160;

/// A failed command: the line to print, the details under it, the exit code.
#[derive(Debug, PartialEq, Eq)]
pub struct Failure {
    pub exit: u8,
    pub line: String,
    /// Printed indented under the line, one per line (the validation errors of a registry).
    pub details: Vec<String>,
}

/// Whether a bearer token went with the request: a 401 means something different in each case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenState {
    Sent,
    Missing,
}

impl Failure {
    fn new(exit: u8, line: String) -> Self {
        Self {
            exit,
            line,
            details: Vec::new(),
        }
    }

    /// A problem on this side (bad file, bad flag): exit 1.
    pub fn local(line: String) -> Self {
        Self::new(EXIT_INVALID, line)
    }

    /// A 2xx answer whose body is not what the contract promises: exit 7.
    pub fn unreadable(detail: &str) -> Self {
        Self::new(
            EXIT_SERVER,
            format!("unreadable answer from the control plane: {detail}"),
        )
    }

    /// The text for stderr: `mana-llm: <line>` and the details, with the token (if it somehow
    /// got in, e.g. echoed by a server) masked.
    pub fn render(&self, token: Option<&str>) -> String {
        let mut text = format!("mana-llm: {}\n", self.line);
        for detail in &self.details {
            text.push_str("  - ");
            text.push_str(detail);
            text.push('\n');
        }
        match token {
            // Masking a very short token would garble ordinary words and hide nothing.
            Some(token) if token.len() >= 4 => text.replace(token, "***"),
            _ => text,
        }
    }
}

/// The exit code for a non-2xx answer. The status decides; the error code only backs it up
/// for the two cases whose code is part of the contract.
pub fn exit_code(status: u16, code: Option<&str>) -> u8 {
    match (status, code) {
        (401, _) | (_, Some("unauthorized")) => EXIT_UNAUTHORIZED,
        (409, _) | (_, Some("version_conflict")) => EXIT_CONFLICT,
        (404, _) => EXIT_NOT_FOUND,
        (400..=499, _) => EXIT_INVALID,
        _ => EXIT_SERVER,
    }
}

#[derive(Deserialize)]
struct Envelope {
    error: ApiError,
}

#[derive(Deserialize)]
struct ApiError {
    #[serde(default)]
    message: String,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    errors: Option<Vec<String>>,
    #[serde(default)]
    current_version: Option<u64>,
}

/// Turns a non-2xx answer into a failure. A body that is not the contract's error envelope
/// (a proxy's HTML page, an older server) still gets the status's exit code.
pub fn api_failure(
    status: u16,
    body: &str,
    token: TokenState,
    expected_version: Option<u64>,
) -> Failure {
    let parsed = serde_json::from_str::<Envelope>(body).ok().map(|e| e.error);
    let code = parsed.as_ref().and_then(|e| e.code.as_deref());
    let exit = exit_code(status, code);
    let message = match &parsed {
        Some(e) if !e.message.is_empty() => e.message.clone(),
        Some(_) => "no message".to_string(),
        None => snippet(body),
    };
    let line = match exit {
        EXIT_UNAUTHORIZED => match token {
            TokenState::Missing => {
                "unauthorized: no admin token was sent; set MANA_LLM_ADMIN_TOKEN".to_string()
            }
            TokenState::Sent => {
                "unauthorized: the control plane rejected the admin token; set MANA_LLM_ADMIN_TOKEN to its token"
                    .to_string()
            }
        },
        EXIT_CONFLICT => {
            let current = parsed.as_ref().and_then(|e| e.current_version);
            match (current, expected_version) {
                (Some(c), Some(x)) => format!(
                    "version conflict: the current version is {c}, not {x}; check what changed and retry with --expected-version {c}"
                ),
                (Some(c), None) => format!("version conflict: the current version is {c}"),
                (None, _) => format!("version conflict: {message}"),
            }
        }
        EXIT_NOT_FOUND if parsed.is_none() => {
            format!("not found (HTTP 404: {message}); is the admin API served at this URL?")
        }
        EXIT_NOT_FOUND => format!("not found: {message}"),
        EXIT_INVALID if code == Some("invalid_registry") => {
            format!("invalid registry: {message}")
        }
        EXIT_INVALID => format!("request refused (HTTP {status}): {message}"),
        _ => format!("control plane error (HTTP {status}): {message}"),
    };
    let mut failure = Failure::new(exit, line);
    if let Some(errors) = parsed.and_then(|e| e.errors) {
        failure.details = errors;
    }
    failure
}

/// A request that got no HTTP answer at all.
pub fn transport_failure(error: &reqwest::Error, shown_url: &str) -> Failure {
    if error.is_timeout() {
        return Failure::new(
            EXIT_UNREACHABLE,
            format!(
                "no answer from the control plane at {shown_url} within {} s; is the control plane running?",
                super::TIMEOUT.as_secs()
            ),
        );
    }
    if error.is_connect() || error.is_request() {
        return Failure::new(
            EXIT_UNREACHABLE,
            format!(
                "cannot reach the control plane at {shown_url} ({}); is the control plane running?",
                root_cause(error)
            ),
        );
    }
    // A connection that broke while the body was read, a body that is not text, …
    Failure::new(
        EXIT_SERVER,
        format!(
            "unreadable answer from the control plane at {shown_url}: {}",
            root_cause(error)
        ),
    )
}

/// The innermost cause ("Connection refused (os error 111)") says more than reqwest's outer
/// "error sending request for url (…)".
fn root_cause(error: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = error;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    cause.to_string()
}

/// The URL for messages: credentials in it are dropped, everything else kept.
pub fn shown_url(url: &Url) -> String {
    let mut shown = url.clone();
    // Both fail only for URLs that cannot have credentials, where there is nothing to drop.
    let _ = shown.set_password(None);
    let _ = shown.set_username("");
    shown.to_string()
}

fn snippet(body: &str) -> String {
    let flat: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.is_empty() {
        return "empty body".to_string();
    }
    let mut out: String = flat.chars().take(SNIPPET_CHARS).collect();
    if flat.chars().count() > SNIPPET_CHARS {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_body(code: &str, extra: &str) -> String {
        format!(
            r#"{{"error": {{"message": "m for {code}", "type": "t", "code": "{code}"{extra}}}}}"#
        )
    }

    #[test]
    fn exit_codes_follow_the_status() {
        assert_eq!(exit_code(400, Some("invalid_registry")), 1);
        assert_eq!(exit_code(422, None), 1);
        assert_eq!(exit_code(403, Some("forbidden")), 1);
        assert_eq!(exit_code(401, Some("unauthorized")), 4);
        assert_eq!(exit_code(401, None), 4);
        assert_eq!(exit_code(409, Some("version_conflict")), 5);
        assert_eq!(exit_code(409, None), 5);
        assert_eq!(exit_code(404, Some("unknown_version")), 6);
        assert_eq!(exit_code(404, Some("no_registry")), 6);
        assert_eq!(exit_code(500, Some("internal")), 7);
        assert_eq!(exit_code(503, None), 7);
        // Not an error status a client should ever get, so it is the server's fault.
        assert_eq!(exit_code(302, None), 7);
    }

    #[test]
    fn the_error_code_backs_up_an_unusual_status() {
        assert_eq!(exit_code(403, Some("unauthorized")), 4);
        assert_eq!(exit_code(400, Some("version_conflict")), 5);
    }

    #[test]
    fn an_invalid_registry_lists_every_error() {
        let body = error_body("invalid_registry", r#", "errors": ["a: bad", "b: worse"]"#);
        let failure = api_failure(400, &body, TokenState::Sent, None);
        assert_eq!(failure.exit, 1);
        assert_eq!(
            failure.render(None),
            "mana-llm: invalid registry: m for invalid_registry\n  - a: bad\n  - b: worse\n"
        );
    }

    #[test]
    fn a_conflict_names_the_current_version() {
        let body = error_body("version_conflict", r#", "current_version": 7"#);
        let failure = api_failure(409, &body, TokenState::Sent, Some(5));
        assert_eq!(failure.exit, 5);
        assert!(failure
            .line
            .starts_with("version conflict: the current version is 7, not 5"));
        let failure = api_failure(409, &body, TokenState::Sent, None);
        assert_eq!(failure.line, "version conflict: the current version is 7");
    }

    #[test]
    fn unauthorized_says_which_variable_to_set_and_never_shows_the_token() {
        let token = "s3cret-token-value";
        let body = error_body("unauthorized", "");
        for state in [TokenState::Sent, TokenState::Missing] {
            let failure = api_failure(401, &body, state, None);
            assert_eq!(failure.exit, 4);
            let text = failure.render(Some(token));
            assert!(text.starts_with("mana-llm: unauthorized: "), "{text}");
            assert!(text.contains("set MANA_LLM_ADMIN_TOKEN"), "{text}");
            assert!(!text.contains(token), "{text}");
            assert_eq!(text.lines().count(), 1);
        }
    }

    #[test]
    fn a_token_echoed_by_the_server_is_masked() {
        let body = r#"{"error": {"message": "bad token s3cret-token-value", "code": "forbidden"}}"#;
        let text =
            api_failure(403, body, TokenState::Sent, None).render(Some("s3cret-token-value"));
        assert_eq!(
            text,
            "mana-llm: request refused (HTTP 403): bad token ***\n"
        );
    }

    #[test]
    fn not_found_and_server_errors_carry_the_message() {
        let body = error_body("unknown_version", "");
        let failure = api_failure(404, &body, TokenState::Sent, None);
        assert_eq!(
            (failure.exit, failure.line.as_str()),
            (6, "not found: m for unknown_version")
        );
        let failure = api_failure(500, &error_body("internal", ""), TokenState::Sent, None);
        assert_eq!(
            (failure.exit, failure.line.as_str()),
            (7, "control plane error (HTTP 500): m for internal")
        );
    }

    #[test]
    fn a_body_that_is_not_the_envelope_still_gets_one_line() {
        let html = "<html>\n<body>Bad   Gateway</body>\n</html>";
        let failure = api_failure(502, html, TokenState::Sent, None);
        assert_eq!(failure.exit, 7);
        assert_eq!(
            failure.line,
            "control plane error (HTTP 502): <html> <body>Bad Gateway</body> </html>"
        );
        let failure = api_failure(404, "", TokenState::Sent, None);
        assert_eq!(failure.exit, 6);
        assert!(failure
            .line
            .contains("is the admin API served at this URL?"));
        let long = "x".repeat(500);
        let failure = api_failure(500, &long, TokenState::Sent, None);
        assert!(failure.line.ends_with('…'));
        assert!(failure.line.chars().count() < 250);
    }

    #[test]
    fn shown_urls_drop_credentials() {
        let url = Url::parse("https://admin:pw@cp.example:8443/base").ok();
        assert_eq!(
            url.map(|u| shown_url(&u)).as_deref(),
            Some("https://cp.example:8443/base")
        );
    }
}
