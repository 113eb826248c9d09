//! The admin API over HTTP: one base URL, the token on every request, and non-2xx answers
//! turned into [`Failure`]s.

use reqwest::header::{HeaderValue, AUTHORIZATION};
use reqwest::{RequestBuilder, Url};

use super::failure::{self, api_failure, transport_failure, Failure, TokenState};
use super::{TIMEOUT, TOKEN_ENV};

/// The admin API at one base URL, with the token (if any) attached to every request.
pub(super) struct Client {
    http: reqwest::Client,
    /// `{url}/admin/v1`, without a trailing slash.
    base: String,
    /// The URL as error messages show it: without any user:password part.
    shown: String,
    auth: Option<HeaderValue>,
}

impl Client {
    pub(super) fn new(url: &str, token: Option<&str>) -> Result<Self, Failure> {
        let parsed =
            Url::parse(url).map_err(|e| Failure::local(format!("invalid --url '{url}': {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(Failure::local(format!(
                "invalid --url '{url}': expected http:// or https://"
            )));
        }
        let auth = match token {
            Some(token) => {
                let mut value =
                    HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                        Failure::local(format!(
                            "{TOKEN_ENV} contains characters not allowed in an HTTP header"
                        ))
                    })?;
                // Keeps the value out of reqwest's Debug output and HTTP/2 header tables.
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            // An admin API has no reason to redirect, and following one could carry the token
            // somewhere unexpected.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Failure::local(format!("cannot set up the HTTP client: {e}")))?;
        Ok(Self {
            http,
            base: format!("{}/admin/v1", url.trim_end_matches('/')),
            shown: failure::shown_url(&parsed),
            auth,
        })
    }

    pub(super) fn get(&self, path: &str) -> RequestBuilder {
        self.with_auth(self.http.get(format!("{}{path}", self.base)))
    }

    pub(super) fn post(&self, path: &str) -> RequestBuilder {
        self.with_auth(self.http.post(format!("{}{path}", self.base)))
    }

    fn with_auth(&self, request: RequestBuilder) -> RequestBuilder {
        match &self.auth {
            Some(value) => request.header(AUTHORIZATION, value.clone()),
            None => request,
        }
    }

    /// Sends the request; a 2xx answer's body comes back, anything else becomes a [`Failure`].
    /// `expected_version` only makes a 409's message more precise.
    pub(super) async fn send(
        &self,
        request: RequestBuilder,
        expected_version: Option<u64>,
    ) -> Result<String, Failure> {
        let response = request
            .send()
            .await
            .map_err(|e| transport_failure(&e, &self.shown))?;
        let status = response.status().as_u16();
        let body = response
            .text()
            .await
            .map_err(|e| transport_failure(&e, &self.shown))?;
        if (200..300).contains(&status) {
            Ok(body)
        } else {
            let token = if self.auth.is_some() {
                TokenState::Sent
            } else {
                TokenState::Missing
            };
            Err(api_failure(status, &body, token, expected_version))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_targets_admin_v1_and_rejects_bad_urls() {
        let client = Client::new("http://u:secret@example.test:3025/", Some("tok"));
        let client = client.ok();
        assert_eq!(
            client.as_ref().map(|c| c.base.as_str()),
            Some("http://u:secret@example.test:3025/admin/v1")
        );
        assert_eq!(
            client.as_ref().map(|c| c.shown.as_str()),
            Some("http://example.test:3025/")
        );
        assert_eq!(
            Client::new("not a url", None).err().map(|f| f.exit),
            Some(1)
        );
        assert_eq!(Client::new("ftp://x", None).err().map(|f| f.exit), Some(1));
    }

    #[test]
    fn a_token_with_a_newline_is_refused_without_being_shown() {
        let failure = Client::new("http://127.0.0.1:3025", Some("abc\ndef")).err();
        let line = failure.map(|f| f.line).unwrap_or_default();
        assert!(line.contains(TOKEN_ENV));
        assert!(!line.contains("abc"));
    }
}
