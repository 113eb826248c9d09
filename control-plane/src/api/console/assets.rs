//! The console's files, compiled in: `control-plane/console/` holds them as real HTML, CSS
//! and JavaScript files, so they are edited, linted and diffed as what they are.

use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::api::AdminError;

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const JS: &str = "text/javascript; charset=utf-8";

macro_rules! asset {
    ($name:literal, $content_type:expr) => {
        Asset {
            name: $name,
            content_type: $content_type,
            body: include_str!(concat!("../../../console/", $name)),
        }
    };
}

const ASSETS: &[Asset] = &[
    asset!("console.css", "text/css; charset=utf-8"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("overview.js", JS),
    asset!("versions.js", JS),
    asset!("push.js", JS),
    asset!("rollback.js", JS),
    asset!("fleet.js", JS),
    asset!("rollouts.js", JS),
    asset!("audit.js", JS),
];

const SHELL: &str = include_str!("../../../console/index.html");
const SIGN_IN: &str = include_str!("../../../console/sign-in.html");

/// `GET /admin/assets/{name}`. Revalidated on every load (`no-cache`), so a new binary's
/// files are used at once.
pub async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(a) => (
            [(CONTENT_TYPE, a.content_type), (CACHE_CONTROL, "no-cache")],
            a.body,
        )
            .into_response(),
        None => AdminError::NoSuchPage(name).into_response(),
    }
}

/// An HTML page, never cached (it carries the session's CSRF token).
pub fn html(status: StatusCode, page: String) -> Response {
    (
        status,
        [
            (CONTENT_TYPE, "text/html; charset=utf-8"),
            (CACHE_CONTROL, "no-store"),
        ],
        page,
    )
        .into_response()
}

/// The console shell. `csrf` is hex (see `session`), so it needs no escaping; `signed_in`
/// shows the sign-out button.
pub fn shell(csrf: &str, signed_in: bool) -> String {
    SHELL
        .replace("{{CSRF}}", csrf)
        .replace("{{AUTH}}", if signed_in { "session" } else { "loopback" })
}

/// The sign-in form, with a message after a refusal.
pub fn sign_in_page(message: Option<&str>) -> String {
    SIGN_IN.replace("{{MESSAGE}}", &escape(message.unwrap_or("")))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
