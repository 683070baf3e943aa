//! The real Prometheus Alertmanager in front of the bridge: an alert fired with `amtool` reaches
//! the device as a FIRING notification, and resolving it sends the RESOLVED one. `scripts/test`
//! installs Debian's `prometheus-alertmanager` (which names its binary `prometheus-alertmanager`;
//! upstream's is `alertmanager`) when neither is on `PATH`.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pushjet_bridge::pushjet::{Device, Message};

use crate::common::{POLL_INTERVAL, assert_no_more_messages, spawn_app_with_routes};

const TOKEN: &str = "am-bearer-7f3c9e2a";
/// Alertmanager sends the first notification of a group after `group_wait` (1 s here) and a
/// resolved one at the next `group_interval` (1 s); this leaves room for a slow machine.
const NOTIFICATION_TIMEOUT: Duration = Duration::from_secs(20);

/// The first of `names` found in a directory of `PATH`.
fn on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

pub fn required(names: &[&str]) -> PathBuf {
    on_path(names).unwrap_or_else(|| {
        panic!(
            "none of {names:?} is on PATH: this test needs the real Prometheus Alertmanager; \
             run the README's test command, scripts/test, which installs Debian's \
             prometheus-alertmanager"
        )
    })
}

/// A port nobody listens on right now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// A running Alertmanager, killed when dropped.
pub struct Alertmanager {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Alertmanager {
    fn start(binary: &Path, dir: &Path, webhook_url: &str) -> Self {
        Self::start_with_receiver(
            binary,
            dir,
            &format!(
                "    webhook_configs:\n      - url: {webhook_url}\n        \
                 send_resolved: true\n        http_config:\n          authorization:\n            \
                 type: Bearer\n            credentials: {TOKEN}\n"
            ),
        )
    }

    /// Starts Alertmanager with one receiver, `bridge`, whose configuration (its `*_configs`
    /// entries, indented by four spaces) is `receiver`.
    pub fn start_with_receiver(binary: &Path, dir: &Path, receiver: &str) -> Self {
        let config = dir.join("alertmanager.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  resolve_timeout: 1m\n\
                 route:\n  receiver: bridge\n  group_by: [alertname]\n  group_wait: 1s\n  \
                 group_interval: 1s\n  repeat_interval: 1h\n\
                 receivers:\n  - name: bridge\n{receiver}"
            ),
        )
        .expect("the configuration is written");
        let port = free_port();
        let log = dir.join("alertmanager.log");
        let output = File::create(&log).expect("a log file");
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdin(Stdio::null())
            .stdout(output.try_clone().expect("a second log handle"))
            .stderr(output)
            .spawn()
            .unwrap_or_else(|error| panic!("{} does not start: {error}", binary.display()));
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `/-/ready` answers 200.
    pub async fn ready(&mut self) {
        let client = awc::Client::default();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(response) = client.get(format!("{}/-/ready", self.url)).send().await
                && response.status().is_success()
            {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("alertmanager exited ({status}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "alertmanager is not ready after 15 s:\n{}",
                self.log()
            );
            actix_web::rt::time::sleep(POLL_INTERVAL).await;
        }
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `amtool alert add` against the Alertmanager with extra arguments.
pub async fn amtool_add(amtool: &Path, alertmanager: &Alertmanager, extra: &[String]) {
    let mut command = Command::new(amtool);
    command
        .arg(format!("--alertmanager.url={}", alertmanager.url))
        .args([
            "alert",
            "add",
            "alertname=DiskFull",
            "severity=critical",
            "instance=db-1",
        ])
        .arg("--annotation=summary=Disk 95% full")
        .args(extra);
    let output = actix_web::rt::task::spawn_blocking(move || command.output())
        .await
        .expect("the blocking task runs")
        .expect("amtool starts");
    assert!(
        output.status.success(),
        "amtool alert add failed: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        alertmanager.log()
    );
}

/// Polls the device until one message arrives, failing with Alertmanager's log.
async fn next_message(device: &Device, alertmanager: &Alertmanager) -> Message {
    let deadline = Instant::now() + NOTIFICATION_TIMEOUT;
    loop {
        let mut messages = device.messages().await.expect("the device reads");
        assert!(
            messages.len() <= 1,
            "more than one notification: {messages:#?}"
        );
        if let Some(message) = messages.pop() {
            return message;
        }
        assert!(
            Instant::now() < deadline,
            "no notification within {NOTIFICATION_TIMEOUT:?}; alertmanager log:\n{}",
            alertmanager.log()
        );
        actix_web::rt::time::sleep(POLL_INTERVAL).await;
    }
}

/// `seconds` since the Unix epoch as RFC 3339 in UTC, as amtool's `--end` takes it.
pub fn rfc3339(seconds: u64) -> String {
    let days = (seconds / 86_400) as i64;
    let rest = seconds % 86_400;
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[test]
fn rfc3339_formats_unix_seconds_in_utc() {
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
    assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    assert_eq!(rfc3339(1_795_838_725), "2026-11-28T04:05:25Z");
}

#[actix_web::test]
async fn a_real_alertmanager_alert_arrives_firing_then_resolved() {
    let binary = required(&["alertmanager", "prometheus-alertmanager"]);
    let amtool = required(&["amtool"]);
    let app = spawn_app_with_routes(&[
        ("PUSHJET_BRIDGE_ROUTES", "alerts"),
        ("PUSHJET_BRIDGE_ROUTE_ALERTS_SOURCE", "alertmanager"),
        ("PUSHJET_BRIDGE_ROUTE_ALERTS_TOKEN", TOKEN),
        ("PUSHJET_BRIDGE_ROUTE_ALERTS_RESOLVED", "send"),
    ])
    .await;
    let dir = tempfile::tempdir().expect("a temporary folder");
    let mut alertmanager = Alertmanager::start(&binary, dir.path(), &app.url("/hooks/alerts"));
    alertmanager.ready().await;

    amtool_add(&amtool, &alertmanager, &[]).await;
    let firing = next_message(&app.device, &alertmanager).await;
    let title = firing.title.clone().unwrap_or_default();
    assert!(
        title.contains("FIRING") && title.contains("DiskFull"),
        "{firing:#?}"
    );
    assert_eq!(title, "FIRING: DiskFull on db-1");
    assert_eq!(firing.importance.get(), 5, "{firing:#?}");
    assert!(firing.message.contains("Disk 95% full"), "{firing:#?}");

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_secs();
    amtool_add(&amtool, &alertmanager, &[format!("--end={}", rfc3339(now))]).await;
    let resolved = next_message(&app.device, &alertmanager).await;
    assert_eq!(
        resolved.title.as_deref(),
        Some("RESOLVED: DiskFull on db-1"),
        "{resolved:#?}"
    );
    assert_eq!(resolved.importance.get(), 1, "{resolved:#?}");
    assert!(
        resolved.message.starts_with("Resolved after"),
        "{resolved:#?}"
    );
    assert_no_more_messages(&app.device).await;
}
