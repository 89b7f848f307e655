//! The HTTP client behind `sutazai task ...` and `sutazai agents ...`: the spec's routes on
//! a running server, with the server's `{code, message}` errors kept intact so the CLI
//! can show them as the server meant them.

use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use serde_json::Value;

/// Time to open a connection: the server is local or on the LAN, so a few seconds
/// separate "slow" from "not running".
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time for a whole request; every route answers from memory or one journal query.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Most of an unexpected (non-JSON) error body shown to the user.
const MAX_BODY_SHOWN: usize = 300;

/// Why a call to the server failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// `--api` / `SUTAZAI_API_URL` is not an absolute `http(s)` URL.
    #[error("invalid server URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Nothing accepted the connection: the server is most likely not running.
    #[error("cannot connect to the SutazAI server at {url}: {source}")]
    Unreachable {
        /// The server's base URL.
        url: String,
        /// The connection error.
        #[source]
        source: reqwest::Error,
    },
    /// The connection failed or timed out after it was opened.
    #[error("request to {url} failed: {source}")]
    Http {
        /// The URL called.
        url: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with an error: its `{code, message}` body.
    #[error("{message} ({code})")]
    Api {
        /// HTTP status.
        status: u16,
        /// The server's stable error code (`task_not_found`).
        code: String,
        /// The server's explanation.
        message: String,
    },
    /// The server answered 2xx with a body that is not the expected JSON.
    #[error("unexpected answer from {url}: {message}")]
    Decode {
        /// The URL called.
        url: String,
        /// What was wrong.
        message: String,
    },
}

impl ClientError {
    /// Whether the server could not be reached at all (the "run `sutazai serve`" case).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, ClientError::Unreachable { .. })
    }
}

/// A client of one SutazAI server.
#[derive(Debug, Clone)]
pub struct ApiClient {
    /// Server root, e.g. `http://127.0.0.1:8000` (a path prefix behind a proxy is kept).
    base: Url,
    http: reqwest::Client,
    /// Sent as the bearer credential (`--token`, `SUTAZAI_API_TOKEN`).
    token: Option<String>,
    /// Certificates trusted besides the system's (the server's own TLS chain).
    roots: Vec<reqwest::Certificate>,
    /// Sent with every request (the bearer).
    headers: reqwest::header::HeaderMap,
}

fn http_client(
    roots: &[reqwest::Certificate],
    headers: &reqwest::header::HeaderMap,
) -> reqwest::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .default_headers(headers.clone());
    for root in roots {
        builder = builder.add_root_certificate(root.clone());
    }
    builder.build()
}

impl ApiClient {
    /// A client for the server at `base_url`.
    pub fn new(base_url: &str) -> Result<ApiClient, ClientError> {
        let invalid = |reason: String| ClientError::InvalidUrl {
            url: base_url.to_owned(),
            reason,
        };
        let base = Url::parse(base_url.trim()).map_err(|e| invalid(e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(invalid(format!(
                "unsupported scheme `{}` (expected http or https)",
                base.scheme()
            )));
        }
        if base.cannot_be_a_base() || base.host_str().is_none() {
            return Err(invalid("the URL has no host".to_owned()));
        }
        let headers = reqwest::header::HeaderMap::new();
        let http = http_client(&[], &headers)
            .map_err(|e| invalid(format!("cannot build the HTTP client: {e}")))?;
        Ok(ApiClient {
            base,
            http,
            token: None,
            roots: Vec::new(),
            headers,
        })
    }

    /// The same client also trusting the certificates in `pem` (the server's
    /// `SUTAZAI_TLS_CERT` chain: a private CA in it makes its certificates trusted).
    pub fn trusting(mut self, pem: &[u8]) -> Result<ApiClient, ClientError> {
        let invalid = |reason: String| ClientError::InvalidUrl {
            url: self.base.to_string(),
            reason,
        };
        let roots = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| invalid(format!("the TLS certificate file is not PEM: {e}")))?;
        self.roots.extend(roots);
        self.http = http_client(&self.roots, &self.headers)
            .map_err(|e| invalid(format!("cannot build the HTTP client: {e}")))?;
        Ok(self)
    }

    /// The same client sending `Authorization: Bearer <token>` (an access token or an API
    /// key) on every request, and `?access_token=` on WebSocket URLs.
    pub fn with_token(mut self, token: Option<String>) -> Result<ApiClient, ClientError> {
        let Some(token) = token.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty()) else {
            return Ok(self);
        };
        let invalid = |reason: String| ClientError::InvalidUrl {
            url: self.base.to_string(),
            reason,
        };
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| {
                invalid("the API token contains characters a header cannot carry".to_owned())
            })?;
        value.set_sensitive(true);
        self.headers.insert(reqwest::header::AUTHORIZATION, value);
        self.http = http_client(&self.roots, &self.headers)
            .map_err(|e| invalid(format!("cannot build the HTTP client: {e}")))?;
        self.token = Some(token);
        Ok(self)
    }

    /// The server root as given.
    pub fn base_url(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    /// The URL of `segments` under the server root; each segment is percent-encoded, so an
    /// id can never escape its path position.
    pub fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// The WebSocket URL of `segments` (`ws://` or `wss://`).
    pub fn ws_url(&self, segments: &[&str]) -> Url {
        let mut url = self.url(segments);
        let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
        // Only fails for schemes that cannot switch, and the base was checked to be http(s).
        let _ = url.set_scheme(scheme);
        if let Some(token) = &self.token {
            // WebSocket handshakes from browsers cannot carry headers, so the server takes
            // the token from the query there; this client uses the same way.
            url.query_pairs_mut().append_pair("access_token", token);
        }
        url
    }

    /// `GET` with query parameters (`None` values are left out).
    pub async fn get(
        &self,
        segments: &[&str],
        query: &[(&str, Option<String>)],
    ) -> Result<Value, ClientError> {
        let mut url = self.url(segments);
        {
            let mut pairs = url.query_pairs_mut();
            for (name, value) in query {
                if let Some(value) = value {
                    pairs.append_pair(name, value);
                }
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        self.send(Method::GET, url, None).await
    }

    /// `POST` a JSON body.
    pub async fn post(&self, segments: &[&str], body: &Value) -> Result<Value, ClientError> {
        self.send(Method::POST, self.url(segments), Some(body))
            .await
    }

    /// `DELETE`.
    pub async fn delete(&self, segments: &[&str]) -> Result<Value, ClientError> {
        self.send(Method::DELETE, self.url(segments), None).await
    }

    /// `GET` of a text document (`/metrics`).
    pub async fn get_text(&self, segments: &[&str]) -> Result<String, ClientError> {
        let url = self.url(segments);
        let bytes = self.exchange(Method::GET, url, None).await?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    async fn send(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let bytes = self.exchange(method, url.clone(), body).await?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode {
            url: url.to_string(),
            message: format!("not JSON: {e}"),
        })
    }

    /// The body of a successful answer; the server's `{code, message}` otherwise.
    async fn exchange(
        &self,
        method: Method,
        url: Url,
        body: Option<&Value>,
    ) -> Result<bytes::Bytes, ClientError> {
        let mut request = self.http.request(method, url.clone());
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|source| {
            if source.is_connect() {
                ClientError::Unreachable {
                    url: self.base_url().to_owned(),
                    source,
                }
            } else {
                ClientError::Http {
                    url: url.to_string(),
                    source,
                }
            }
        })?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|source| ClientError::Http {
            url: url.to_string(),
            source,
        })?;
        if status.is_success() {
            return Ok(bytes);
        }
        Err(api_error(status, &bytes))
    }
}

/// The server's `{code, message}`, or a stand-in naming the status when the body is not
/// that (a proxy's HTML page, say).
fn api_error(status: StatusCode, body: &[u8]) -> ClientError {
    let parsed: Option<(String, String)> =
        serde_json::from_slice::<Value>(body).ok().and_then(|v| {
            let code = v.get("code")?.as_str()?.to_owned();
            let message = v.get("message")?.as_str()?.to_owned();
            Some((code, message))
        });
    let (code, message) = parsed.unwrap_or_else(|| {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        let shown: String = text.chars().take(MAX_BODY_SHOWN).collect();
        let message = if shown.is_empty() {
            format!("the server answered HTTP {status}")
        } else {
            format!("the server answered HTTP {status}: {shown}")
        };
        (format!("http_{}", status.as_u16()), message)
    });
    ClientError::Api {
        status: status.as_u16(),
        code,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_percent_encoded_into_one_segment() {
        let client = ApiClient::new("http://127.0.0.1:8000").expect("valid URL");
        let url = client.url(&["tasks", "../agents?x=1"]);
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:8000/tasks/..%2Fagents%3Fx=1"
        );
    }

    #[test]
    fn a_path_prefix_is_kept_and_ws_switches_scheme() {
        let client = ApiClient::new("https://example.test/sutazai/").expect("valid URL");
        assert_eq!(
            client.url(&["tasks"]).as_str(),
            "https://example.test/sutazai/tasks"
        );
        assert_eq!(
            client.ws_url(&["ws"]).as_str(),
            "wss://example.test/sutazai/ws"
        );
    }

    #[test]
    fn non_http_urls_are_refused() {
        let err = ApiClient::new("ftp://host").expect_err("ftp is not http");
        assert!(
            err.to_string().contains("unsupported scheme `ftp`"),
            "{err}"
        );
        assert!(ApiClient::new("127.0.0.1:8000").is_err());
    }

    #[test]
    fn error_bodies_keep_the_servers_code_and_message() {
        let err = api_error(
            StatusCode::NOT_FOUND,
            br#"{"code":"task_not_found","message":"task `x` does not exist"}"#,
        );
        assert_eq!(err.to_string(), "task `x` does not exist (task_not_found)");
        let err = api_error(StatusCode::BAD_GATEWAY, b"<html>bad gateway</html>");
        assert_eq!(
            err.to_string(),
            "the server answered HTTP 502 Bad Gateway: <html>bad gateway</html> (http_502)"
        );
    }
}
