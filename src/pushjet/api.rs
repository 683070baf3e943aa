//! The connection to one Pushjet API: base URL, timeout, a pooled HTTP client, and the one place
//! that turns an HTTP answer into a protocol value or an [`Error`].

use std::time::Duration;

use awc::http::{Method, StatusCode, header};
use serde_json::Value;
use url::Url;

use super::device::Device;
use super::error::{Error, RequestError};
use super::reuse::ConnectionReuse;
use super::wire::{ErrorEnvelope, ServiceEnvelope};
use super::{DeviceUuid, NewMessage, PublicKey, SecretKey, Service};

/// The old hosted Pushjet API, the Python client's default.
pub const DEFAULT_API_URL: &str = "https://api.pushjet.io/";

/// How long a request may take by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest answer read from the server.
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// Why an API URL was refused.
#[derive(Debug, thiserror::Error)]
pub enum ApiUrlError {
    /// Not a URL at all.
    #[error("the Pushjet API URL is not a valid URL: {0}")]
    Malformed(#[from] url::ParseError),
    /// Not http or https, or carries a query, fragment or credentials.
    #[error(
        "the Pushjet API URL must be a plain http:// or https:// URL without query, fragment or credentials"
    )]
    Unsupported,
}

/// A Pushjet API base URL: plain http(s), no query, fragment or credentials, path ending in `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiUrl(Url);

impl ApiUrl {
    /// Parses an API URL, with or without a path and trailing slash.
    pub fn parse(raw: &str) -> Result<Self, ApiUrlError> {
        normalise_base(raw).map(Self)
    }

    /// The URL, always ending in `/`.
    pub fn as_url(&self) -> &Url {
        &self.0
    }
}

impl std::fmt::Display for ApiUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.as_str())
    }
}

/// A Pushjet API endpoint with its HTTP client; cheap to clone (the connection pool is shared).
/// Must be used on an actix (or current-thread Tokio) runtime.
#[derive(Clone)]
pub struct Api {
    base: Url,
    client: awc::Client,
    timeout: Duration,
    reuse: ConnectionReuse,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("base", &self.base.as_str())
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Api {
    /// An API at `base_url` (with or without a path and trailing slash) with the default timeout.
    pub fn new(base_url: &str) -> Result<Self, ApiUrlError> {
        Self::with_timeout(base_url, DEFAULT_TIMEOUT)
    }

    /// An API at `base_url` whose requests give up after `timeout`.
    pub fn with_timeout(base_url: &str, timeout: Duration) -> Result<Self, ApiUrlError> {
        Ok(Self::at(ApiUrl::parse(base_url)?, timeout))
    }

    /// An API at an already parsed URL whose requests give up after `timeout`.
    pub fn at(url: ApiUrl, timeout: Duration) -> Self {
        let base = url.0;
        install_crypto_provider();
        let client = awc::Client::builder()
            .timeout(timeout)
            .add_default_header((
                header::USER_AGENT,
                concat!("pushjet-bridge/", env!("CARGO_PKG_VERSION")),
            ))
            .finish();
        Self {
            base,
            client,
            timeout,
            reuse: ConnectionReuse::default(),
        }
    }

    /// The base URL, always ending in `/`.
    pub fn base_url(&self) -> &Url {
        &self.base
    }

    /// Creates a service (`POST /service`); the answer holds its secret key.
    pub async fn create_service(&self, name: &str, icon: Option<&str>) -> Result<Service, Error> {
        let mut form = vec![("name", name.to_owned())];
        if let Some(icon) = icon {
            form.push(("icon", icon.to_owned()));
        }
        let value = self.call(Method::POST, "service", &form).await?;
        let envelope: ServiceEnvelope = from_value(value)?;
        let secret = envelope
            .service
            .secret
            .clone()
            .ok_or_else(|| Error::Server {
                status: 200,
                detail: "the created service came back without its secret key".to_owned(),
            })?;
        Ok(Service::from_view(
            self.clone(),
            envelope.service,
            Some(secret),
        ))
    }

    /// Opens a service by its secret key (read-write), checking that it exists.
    pub async fn service_by_secret(&self, secret: SecretKey) -> Result<Service, Error> {
        let view = self
            .get_service(&[("secret", secret.expose().to_owned())])
            .await?;
        Ok(Service::from_view(self.clone(), view, Some(secret)))
    }

    /// Opens a service by its public key (read-only), checking that it exists.
    pub async fn service_by_public_key(&self, public: &PublicKey) -> Result<Service, Error> {
        let view = self
            .get_service(&[("service", public.as_str().to_owned())])
            .await?;
        Ok(Service::from_view(self.clone(), view, None))
    }

    /// A device; makes no request.
    pub fn device(&self, uuid: DeviceUuid) -> Device {
        Device::new(self.clone(), uuid)
    }

    /// Sends a message with a service's secret key (`POST /message`), without opening the service
    /// first. The secret travels in the form body.
    pub async fn send(&self, secret: &SecretKey, message: &NewMessage) -> Result<(), Error> {
        let mut form = vec![("secret", secret.expose().to_owned())];
        form.extend(message.form_fields());
        self.call_ok(Method::POST, "message", &form).await
    }

    pub(crate) async fn get_service(
        &self,
        identity: &[(&'static str, String)],
    ) -> Result<super::wire::ServiceView, Error> {
        let value = self.call(Method::GET, "service", identity).await?;
        let envelope: ServiceEnvelope = from_value(value)?;
        Ok(envelope.service)
    }

    /// A call whose success is the acknowledgement `{"status": "ok"}`.
    pub(crate) async fn call_ok(
        &self,
        method: Method,
        endpoint: &str,
        form: &[(&'static str, String)],
    ) -> Result<(), Error> {
        let value = self.call(method, endpoint, form).await?;
        if value.get("status").and_then(Value::as_str) == Some("ok") {
            Ok(())
        } else {
            Err(Error::Server {
                status: 200,
                detail: "the answer was not the acknowledgement {\"status\": \"ok\"}".to_owned(),
            })
        }
    }

    /// Sends one form-encoded request and interprets the answer. Every parameter, identity ones
    /// included, travels in the body, so no key ever appears in a URL.
    pub(crate) async fn call(
        &self,
        method: Method,
        endpoint: &str,
        form: &[(&'static str, String)],
    ) -> Result<Value, Error> {
        let url = self.endpoint(endpoint);
        let mut request = self.client.request(method, url.as_str());
        let asked_to_close = !self.reuse.may_reuse();
        if asked_to_close {
            request = request.force_close();
        }
        let mut response = request
            .send_form(&form)
            .await
            .map_err(|error| self.request_error(error))?;
        self.reuse
            .learn(response.version(), response.headers(), asked_to_close);
        let status = response.status();
        let retry_after = retry_after(response.headers());
        let body = response
            .body()
            .limit(MAX_RESPONSE_BYTES)
            .await
            .map_err(|error| Error::Request(RequestError::Transport(error.to_string())))?;
        interpret(status, &body, retry_after)
    }

    fn endpoint(&self, endpoint: &str) -> Url {
        let mut url = self.base.clone();
        url.set_path(&format!("{}{endpoint}", self.base.path()));
        url
    }

    fn request_error(&self, error: awc::error::SendRequestError) -> Error {
        use awc::error::SendRequestError;
        let cause = match error {
            SendRequestError::Timeout => RequestError::Timeout(self.timeout),
            SendRequestError::Connect(error) => RequestError::Connect(error.to_string()),
            other => RequestError::Transport(other.to_string()),
        };
        Error::Request(cause)
    }
}

/// Parses an API URL and makes its path end in `/`, so endpoints join under it.
fn normalise_base(raw: &str) -> Result<Url, ApiUrlError> {
    let mut url = Url::parse(raw.trim())?;
    let plain = matches!(url.scheme(), "http" | "https")
        && url.has_host()
        && url.query().is_none()
        && url.fragment().is_none()
        && url.username().is_empty()
        && url.password().is_none();
    if !plain {
        return Err(ApiUrlError::Unsupported);
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// awc builds its TLS configuration from rustls's process-wide crypto provider, which it does not
/// choose itself; install ring's once (a second install is refused harmlessly).
fn install_crypto_provider() {
    let _already_installed = rustls::crypto::ring::default_provider().install_default();
}

fn retry_after(headers: &header::HeaderMap) -> Option<Duration> {
    headers
        .get(header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// Turns a status and body into a protocol value or an error. Bodies are parsed as JSON whatever
/// their Content-Type says; an `error` object means failure whatever the status says.
fn interpret(
    status: StatusCode,
    body: &[u8],
    retry_after: Option<Duration>,
) -> Result<Value, Error> {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    if let Some(envelope) = parsed
        .as_ref()
        .and_then(|value| serde_json::from_value::<ErrorEnvelope>(value.clone()).ok())
    {
        return Err(Error::from_protocol(
            status.as_u16(),
            envelope.error,
            retry_after,
        ));
    }
    if status == StatusCode::TOO_MANY_REQUESTS {
        return Err(Error::RateLimited { retry_after });
    }
    match parsed {
        Some(value) if status.is_success() && value.is_object() => Ok(value),
        _ => Err(Error::Server {
            status: status.as_u16(),
            detail: if status.is_server_error() {
                "server error".to_owned()
            } else {
                "the answer is not Pushjet's protocol (is the API URL right?)".to_owned()
            },
        }),
    }
}

/// Reads a protocol value into its typed shape.
pub(crate) fn from_value<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, Error> {
    serde_json::from_value(value).map_err(|error| Error::Server {
        status: 200,
        detail: format!("the answer does not have the protocol's shape: {error}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_gets_a_trailing_slash_and_keeps_its_path() {
        let endpoint = |base: &str| Api::new(base).unwrap().endpoint("service").to_string();
        assert_eq!(endpoint("http://h:1"), "http://h:1/service");
        assert_eq!(endpoint("http://h:1/"), "http://h:1/service");
        assert_eq!(endpoint("http://h:1/pushjet"), "http://h:1/pushjet/service");
        assert_eq!(
            endpoint("http://h:1/pushjet/"),
            "http://h:1/pushjet/service"
        );
        assert_eq!(
            endpoint("https://api.pushjet.io/"),
            "https://api.pushjet.io/service"
        );
    }

    #[test]
    fn base_url_must_be_plain_http() {
        assert!(matches!(
            Api::new("ftp://h/"),
            Err(ApiUrlError::Unsupported)
        ));
        assert!(matches!(
            Api::new("http://h/?secret=x"),
            Err(ApiUrlError::Unsupported)
        ));
        assert!(matches!(
            Api::new("http://user:pw@h/"),
            Err(ApiUrlError::Unsupported)
        ));
        assert!(matches!(
            Api::new("not a url"),
            Err(ApiUrlError::Malformed(_))
        ));
    }

    #[test]
    fn error_body_is_an_error_even_with_status_200_and_html_type() {
        let body = br#"{"error": {"id": 6, "message": "Service not found"}}"#;
        assert!(matches!(
            interpret(StatusCode::OK, body, None),
            Err(Error::Nonexistent { id: 6, .. })
        ));
    }

    #[test]
    fn html_pages_and_5xx_are_server_errors() {
        assert!(matches!(
            interpret(StatusCode::NOT_FOUND, b"<html>404</html>", None),
            Err(Error::Server { status: 404, .. })
        ));
        assert!(matches!(
            interpret(StatusCode::INTERNAL_SERVER_ERROR, b"<html>", None),
            Err(Error::Server { status: 500, .. })
        ));
        assert!(matches!(
            interpret(StatusCode::OK, b"not json", None),
            Err(Error::Server { status: 200, .. })
        ));
    }

    #[test]
    fn too_many_requests_keeps_retry_after() {
        let error = interpret(
            StatusCode::TOO_MANY_REQUESTS,
            b"slow down",
            Some(Duration::from_secs(7)),
        );
        assert!(
            matches!(error, Err(Error::RateLimited { retry_after: Some(d) }) if d == Duration::from_secs(7))
        );
    }

    #[test]
    fn a_json_object_with_status_200_is_the_value() {
        let value = interpret(StatusCode::OK, br#"{"status": "ok"}"#, None).unwrap();
        assert_eq!(value["status"], "ok");
    }
}
