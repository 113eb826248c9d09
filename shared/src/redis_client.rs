//! Building the Redis client every process uses (workers, `serve`, the control plane), so a
//! password, an ACL user and TLS work the same everywhere.
//!
//! `REDIS_URL` carries the credentials (`redis://:pass@host:port/`, `redis://user:pass@…`) and
//! picks TLS with `rediss://`. TLS checks the server's certificate against the public roots
//! compiled into the binary, or, when `MANA_LLM_REDIS_CA_FILE` names a PEM file, against that
//! private CA only. Turning the check off (`#insecure`) is refused: a fleet that trusts any
//! certificate hands its fleet key and password to whoever sits in between.
//!
//! Errors never quote the URL: it may hold the password.

use std::path::Path;

use redis::{ConnectionAddr, IntoConnectionInfo, TlsCertificates};

/// The env var naming a PEM file with the CA that signed the Redis server's certificate.
pub const REDIS_CA_FILE_ENV: &str = "MANA_LLM_REDIS_CA_FILE";

/// A Redis setting that cannot work, with the env var to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {key}: {message}")]
pub struct RedisSetupError {
    /// The env var at fault: `REDIS_URL` or [`REDIS_CA_FILE_ENV`].
    pub key: &'static str,
    pub message: String,
}

impl RedisSetupError {
    fn url(message: impl Into<String>) -> Self {
        Self {
            key: "REDIS_URL",
            message: message.into(),
        }
    }

    fn ca_file(message: impl Into<String>) -> Self {
        Self {
            key: REDIS_CA_FILE_ENV,
            message: message.into(),
        }
    }
}

/// Checks the URL (and reads the CA file) without connecting; connections are made later by
/// the caller, which treats a refused password like an unreachable Redis.
pub fn open(url: &str, ca_file: Option<&Path>) -> Result<redis::Client, RedisSetupError> {
    // The parser's message names the problem, never the URL itself.
    let info = url
        .into_connection_info()
        .map_err(|e| RedisSetupError::url(e.to_string()))?;
    let tls = match info.addr() {
        ConnectionAddr::TcpTls { insecure: true, .. } => {
            return Err(RedisSetupError::url(format!(
                "TLS without a certificate check (#insecure) is refused; to trust a private CA, \
                 name its PEM file in {REDIS_CA_FILE_ENV}"
            )))
        }
        ConnectionAddr::TcpTls { .. } => true,
        _ => false,
    };
    let Some(path) = ca_file else {
        return redis::Client::open(info).map_err(|e| RedisSetupError::url(e.to_string()));
    };
    if !tls {
        // Silently ignoring it would leave the operator believing the link is encrypted.
        return Err(RedisSetupError::ca_file(
            "set, but REDIS_URL does not use TLS: use rediss://",
        ));
    }
    let pem = std::fs::read(path)
        .map_err(|e| RedisSetupError::ca_file(format!("cannot read {}: {e}", path.display())))?;
    // An empty trust store would fail every handshake later with a vaguer message.
    if !pem
        .windows(CERT_MARKER.len())
        .any(|w| w == CERT_MARKER.as_bytes())
    {
        return Err(RedisSetupError::ca_file(format!(
            "{} holds no PEM certificate",
            path.display()
        )));
    }
    let certificates = TlsCertificates {
        client_tls: None,
        root_cert: Some(pem),
    };
    redis::Client::build_with_tls(info, certificates)
        .map_err(|e| RedisSetupError::ca_file(format!("cannot use {} as CA: {e}", path.display())))
}

const CERT_MARKER: &str = "-----BEGIN CERTIFICATE-----";

/// Reads a connection failure for the log: a refused password or certificate gets its own
/// sentence naming what to fix, since an operator reads "unreachable" as a network problem.
/// `None` for everything else (Redis down, a timeout), which callers already report.
pub fn describe_failure(error: &redis::RedisError) -> Option<&'static str> {
    let text = error.to_string();
    if error.kind() == redis::ErrorKind::AuthenticationFailed
        || text.contains("WRONGPASS")
        || text.contains("NOAUTH")
    {
        Some("Redis refused the credentials: check the user and password in REDIS_URL")
    } else if text.contains("certificate") || text.contains("Certificate") {
        Some("Redis's TLS certificate was not accepted: check the host name in REDIS_URL and MANA_LLM_REDIS_CA_FILE")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const PASSWORD: &str = "hunter2-very-secret";

    #[test]
    fn plain_and_password_urls_open() {
        assert!(open("redis://127.0.0.1:6379", None).is_ok());
        let client = open(&format!("redis://:{PASSWORD}@127.0.0.1:6379/"), None).unwrap();
        assert_eq!(
            client.get_connection_info().redis_settings().password(),
            Some(PASSWORD)
        );
        let client = open(&format!("redis://mana:{PASSWORD}@127.0.0.1:6379/2"), None).unwrap();
        let settings = client.get_connection_info().redis_settings();
        assert_eq!((settings.username(), settings.db()), (Some("mana"), 2));
    }

    #[test]
    fn rediss_opens_with_the_public_roots() {
        let client = open("rediss://redis.example.com:6380", None).unwrap();
        assert!(matches!(
            client.get_connection_info().addr(),
            ConnectionAddr::TcpTls {
                insecure: false,
                ..
            }
        ));
    }

    #[test]
    fn insecure_tls_is_refused_and_names_the_ca_setting() {
        let e = open(
            &format!("rediss://:{PASSWORD}@127.0.0.1:6380/#insecure"),
            None,
        )
        .unwrap_err();
        assert_eq!(e.key, "REDIS_URL");
        assert!(e.message.contains(REDIS_CA_FILE_ENV), "{e}");
        assert!(!e.message.contains(PASSWORD));
    }

    #[test]
    fn a_bad_url_never_quotes_the_password() {
        let e = open(&format!("http://:{PASSWORD}@127.0.0.1:6379"), None).unwrap_err();
        assert_eq!(e.key, "REDIS_URL");
        assert!(!e.message.contains(PASSWORD), "{e}");
    }

    #[test]
    fn a_ca_file_needs_tls_a_readable_file_and_a_certificate() {
        let dir = std::env::temp_dir().join(format!("mana-llm-redis-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();

        let plain = open("redis://127.0.0.1:6379", Some(&empty)).unwrap_err();
        assert_eq!(plain.key, REDIS_CA_FILE_ENV);
        assert!(plain.message.contains("rediss://"), "{plain}");
        let missing = open("rediss://127.0.0.1:6380", Some(&dir.join("nope.pem"))).unwrap_err();
        assert!(missing.message.contains("nope.pem"), "{missing}");
        let no_cert = open("rediss://127.0.0.1:6380", Some(&empty)).unwrap_err();
        assert!(no_cert.message.contains("no PEM certificate"), "{no_cert}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
