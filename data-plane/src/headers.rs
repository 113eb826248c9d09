//! Response headers the gateway adds: named once, for the edge that sets most of them and the
//! streams and answers that set the resolved target.

pub const REQUEST_ID: &str = "x-request-id";
pub const RESOLVED: &str = "x-mana-llm-resolved";
pub const REGISTRY_VERSION: &str = "x-mana-llm-registry-version";
pub const CACHE: &str = "x-mana-llm-cache";

/// Sets `X-Mana-LLM-Resolved`: the `provider/model` that answered, on every kind of answer.
pub fn set_resolved(headers: &mut http::HeaderMap, target: &str) {
    if let Ok(v) = http::HeaderValue::from_str(target) {
        headers.insert(RESOLVED, v);
    }
}
