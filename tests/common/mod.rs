//! Shared test helpers: start the real service in-process on a random port with its own data
//! directory, give it routes to a real Pushjet service with a subscribed device, post to it, and
//! read back what the device received.

#![allow(dead_code)]

pub mod flaky;
/// A throwaway PostgreSQL server for the tests of a shared outbox (the unit tests' own).
#[path = "../../src/database/test_server.rs"]
pub mod postgres;
pub mod relay;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use awc::http::StatusCode;
use awc::http::header::HeaderMap;
use pushjet_bridge::app::{AppError, Application};
use pushjet_bridge::config::Settings;
use pushjet_bridge::pushjet::{Api, Device, DeviceUuid, Message};
use serde_json::Value;
use tempfile::TempDir;

/// A running service.
pub struct TestApp {
    /// The bound port on 127.0.0.1.
    pub port: u16,
    /// The data directory (kept alive as long as the app when it is a temporary one).
    pub data_dir: PathBuf,
    _temp: Option<TempDir>,
    handle: ServerHandle,
    task: actix_rt::task::JoinHandle<()>,
}

impl TestApp {
    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// A client for the embedded Pushjet API.
    pub fn pushjet(&self) -> Api {
        Api::new(&self.url("/pushjet/")).expect("valid test URL")
    }

    /// Stops the server and waits until it has let go of the data directory.
    pub async fn stop(self) -> Option<TempDir> {
        self.handle.stop(true).await;
        let _ = self.task.await;
        self._temp
    }
}

/// Starts the service with a fresh temporary data directory and extra environment variables.
pub async fn spawn_app_with(extra: &[(&str, &str)]) -> TestApp {
    let temp = tempfile::tempdir().expect("temporary directory");
    let path = temp.path().to_path_buf();
    let mut app = spawn_app_in(&path, extra).await;
    app._temp = Some(temp);
    app
}

/// Starts the service with a fresh temporary data directory.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Starts the service on an existing data directory.
pub async fn spawn_app_in(data_dir: &Path, extra: &[(&str, &str)]) -> TestApp {
    let mut vars = vec![
        ("PUSHJET_BRIDGE_LISTEN".to_owned(), "127.0.0.1:0".to_owned()),
        (
            "PUSHJET_BRIDGE_DATA_DIR".to_owned(),
            data_dir.display().to_string(),
        ),
    ];
    vars.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    // In one test process a stopped service's last tasks may hold its files a while longer on a
    // loaded machine (a restarted process would not: its locks go with the old one).
    let deadline = Instant::now() + Duration::from_secs(20);
    let application = loop {
        let settings = Settings::from_vars(vars.clone()).expect("valid test settings");
        match Application::build(settings).await {
            Ok(application) => break application,
            // A service stopped a moment ago may still be letting go of its databases.
            Err(AppError::Store(_) | AppError::Outbox(_) | AppError::History(_))
                if Instant::now() < deadline =>
            {
                actix_web::rt::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => panic!("the service does not start: {error}"),
        }
    };
    let port = application.port();
    let handle = application.handle();
    let task = actix_rt::spawn(async move {
        application
            .run_until_stopped()
            .await
            .expect("the service runs");
    });
    TestApp {
        port,
        data_dir: data_dir.to_path_buf(),
        _temp: None,
        handle,
        task,
    }
}

/// An upstream Pushjet server (the embedded API of a service of its own, on a fresh data
/// directory) with `services` services, named `route 0`, `route 1`, …, and a fresh device
/// subscribed to all of them; the services' secret keys, in that order. For tests whose bridge
/// sends to a remote Pushjet (`PUSHJET_API_URL`) rather than to its embedded API.
pub async fn pushjet_with_services(services: usize) -> (TestApp, Vec<String>, Device) {
    let upstream = spawn_app().await;
    let uuid = DeviceUuid::parse(&uuid::Uuid::new_v4().to_string()).expect("a UUID");
    let device = upstream.pushjet().device(uuid);
    let mut secrets = Vec::new();
    for n in 0..services {
        let service = upstream
            .pushjet()
            .create_service(&format!("route {n}"), None)
            .await
            .expect("a service");
        device.subscribe(&service).await.expect("subscribed");
        secrets.push(
            service
                .secret_key()
                .expect("its secret")
                .expose()
                .to_owned(),
        );
    }
    (upstream, secrets, device)
}

/// A running service whose routes deliver to a real Pushjet service on its embedded API, with a
/// device subscribed to that service.
pub struct RoutedApp {
    /// The service.
    pub app: TestApp,
    /// The Pushjet service's secret key, given to every route that names none.
    pub secret: String,
    /// A device subscribed to that service.
    pub device: Device,
    _temp: TempDir,
}

impl RoutedApp {
    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        self.app.url(path)
    }
}

/// Starts the service once to create a Pushjet service and subscribe a fresh device to it (in the
/// database of `PUSHJET_BRIDGE_DATABASE_URL` when `vars` name one), then starts it again on the
/// same data directory with `vars`. Every route named in
/// `PUSHJET_BRIDGE_ROUTES` that has no `PUSHJET_BRIDGE_ROUTE_<NAME>_SECRET` of its own gets the new
/// service's secret.
pub async fn spawn_app_with_routes(vars: &[(&str, &str)]) -> RoutedApp {
    let temp = tempfile::tempdir().expect("temporary directory");
    let database: Vec<(&str, &str)> = vars
        .iter()
        .filter(|(name, _)| *name == "PUSHJET_BRIDGE_DATABASE_URL")
        .copied()
        .collect();
    let first = spawn_app_in(temp.path(), &database).await;
    let service = first
        .pushjet()
        .create_service("bridge e2e", None)
        .await
        .expect("the embedded API creates a service");
    let secret = service
        .secret_key()
        .expect("a created service holds its secret")
        .expose()
        .to_owned();
    let uuid = DeviceUuid::parse(&uuid::Uuid::new_v4().to_string()).expect("a v4 UUID");
    first
        .pushjet()
        .device(uuid.clone())
        .subscribe(&service)
        .await
        .expect("the device subscribes");
    first.stop().await;

    let mut all: Vec<(String, String)> = vars
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect();
    let routes = vars
        .iter()
        .find(|(name, _)| *name == "PUSHJET_BRIDGE_ROUTES")
        .map(|(_, value)| *value)
        .unwrap_or_default();
    for route in routes.split(',').map(str::trim).filter(|r| !r.is_empty()) {
        let key = format!(
            "PUSHJET_BRIDGE_ROUTE_{}_SECRET",
            route.to_ascii_uppercase().replace('-', "_")
        );
        if !all.iter().any(|(name, _)| *name == key) {
            all.push((key, secret.clone()));
        }
    }
    let borrowed: Vec<(&str, &str)> = all
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    let app = spawn_app_in(temp.path(), &borrowed).await;
    let device = app.pushjet().device(uuid);
    RoutedApp {
        app,
        secret,
        device,
        _temp: temp,
    }
}

/// The Python the tests drive real clients with (`tests/python/requirements.txt` installed):
/// `PUSHJET_BRIDGE_TEST_PYTHON`, which the README's test command (`scripts/test`) sets.
pub fn test_python() -> String {
    std::env::var("PUSHJET_BRIDGE_TEST_PYTHON").expect(
        "PUSHJET_BRIDGE_TEST_PYTHON must name a Python with tests/python/requirements.txt \
         installed: run the README's test command (scripts/test)",
    )
}

/// How long a test waits for a notification to reach the device.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the device is polled.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// How long a test waits to be sure that nothing more arrives.
pub const GRACE: Duration = Duration::from_millis(300);

/// Reads the device's messages (a destructive read) until at least `count` have arrived, or
/// panics after [`DELIVERY_TIMEOUT`]. Delivery may happen after the webhook was answered, so
/// tests never read only once.
pub async fn wait_for_messages(device: &Device, count: usize) -> Vec<Message> {
    let deadline = Instant::now() + DELIVERY_TIMEOUT;
    let mut received = Vec::new();
    loop {
        received.extend(
            device
                .messages()
                .await
                .expect("the device reads its messages"),
        );
        if received.len() >= count {
            return received;
        }
        assert!(
            Instant::now() < deadline,
            "expected {count} message(s) within {DELIVERY_TIMEOUT:?}, got {}: {received:#?}",
            received.len()
        );
        actix_web::rt::time::sleep(POLL_INTERVAL).await;
    }
}

/// Waits [`GRACE`] and checks that the device received nothing (more).
pub async fn assert_no_more_messages(device: &Device) {
    let deadline = Instant::now() + GRACE;
    while Instant::now() < deadline {
        let late = device
            .messages()
            .await
            .expect("the device reads its messages");
        assert!(late.is_empty(), "unexpected message(s): {late:#?}");
        actix_web::rt::time::sleep(POLL_INTERVAL).await;
    }
}

/// Exactly `count` messages: waits for them, then checks that no more arrive within [`GRACE`].
pub async fn expect_messages(device: &Device, count: usize) -> Vec<Message> {
    let received = wait_for_messages(device, count).await;
    assert_eq!(
        received.len(),
        count,
        "more messages than expected: {received:#?}"
    );
    assert_no_more_messages(device).await;
    received
}

/// Exactly one message, returned.
pub async fn expect_one_message(device: &Device) -> Message {
    expect_messages(device, 1).await.pop().expect("one message")
}

/// An HTTP answer: status, headers, the body as text and as JSON (`Null` when it is not JSON).
#[derive(Debug)]
pub struct Answer {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body as text (lossy UTF-8).
    pub text: String,
    /// The body as JSON, or `Null`.
    pub json: Value,
}

impl Answer {
    /// The `error` sentence of an error answer, or "" when there is none.
    pub fn error(&self) -> &str {
        self.json["error"].as_str().unwrap_or_default()
    }
}

/// How long any request to the service may take: a hang is a failure, not a stuck suite.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Why a POST got no answer.
#[derive(Debug)]
pub enum NoAnswer {
    /// The connection was refused: nothing was sent (the service is down).
    Refused(String),
    /// Anything else (reset, timeout, a connection that broke off): the request may have been
    /// taken.
    Lost(String),
}

/// POSTs `body` to `url` with exactly the given headers (no Content-Type unless given).
pub async fn post(url: &str, headers: &[(&str, &str)], body: impl Into<bytes::Bytes>) -> Answer {
    try_post(url, headers, body)
        .await
        .unwrap_or_else(|error| panic!("POST {url} got no answer: {error:?}"))
}

/// [`post`], telling a request that got no answer from one that was answered.
pub async fn try_post(
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<bytes::Bytes>,
) -> Result<Answer, NoAnswer> {
    let client = awc::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .disable_redirects()
        .finish();
    let mut request = client.post(url);
    for (name, value) in headers {
        request = request.append_header((*name, *value));
    }
    let body: bytes::Bytes = body.into();
    let mut response = request.send_body(body).await.map_err(|error| match error {
        awc::error::SendRequestError::Connect(awc::error::ConnectError::Io(error))
            if error.kind() == std::io::ErrorKind::ConnectionRefused =>
        {
            NoAnswer::Refused(error.to_string())
        }
        other => NoAnswer::Lost(other.to_string()),
    })?;
    let bytes = response
        .body()
        .limit(16 * 1024 * 1024)
        .await
        .map_err(|error| NoAnswer::Lost(format!("unreadable answer body: {error}")))?;
    Ok(Answer {
        status: response.status(),
        headers: response.headers().clone(),
        text: String::from_utf8_lossy(&bytes).into_owned(),
        json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    })
}
