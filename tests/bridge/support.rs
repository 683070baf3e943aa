//! What the bridge tests share besides the service itself: the shared fixtures, the headers each
//! sender puts on a delivery, and signatures computed the way the senders compute them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The real payloads the tests post (`tests/fixtures`, with `SOURCES.md`).
pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// A fixture's bytes, exactly as stored.
pub fn fixture(dir: &str, file: &str) -> Vec<u8> {
    let path = Path::new(FIXTURES).join(dir).join(file);
    std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// The `*.json` files of one fixture folder, sorted by name.
pub fn fixture_names(dir: &str) -> Vec<String> {
    let path: PathBuf = Path::new(FIXTURES).join(dir);
    let mut names: Vec<String> = std::fs::read_dir(&path)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
        .map(|entry| entry.expect("a directory entry").file_name())
        .filter_map(|name| name.into_string().ok())
        .filter(|name| name.ends_with(".json"))
        .collect();
    names.sort();
    names
}

/// The event a GitHub or Gitea fixture was delivered with: its name before the first dot.
pub fn event_of(file: &str) -> &str {
    file.split('.').next().unwrap_or_default()
}

/// GitLab's `X-Gitlab-Event` for a fixture, by the start of its name (gitlab/HEADERS.md).
pub fn gitlab_hook(file: &str) -> &'static str {
    match event_of(file) {
        "issue" => "Issue Hook",
        "job" => "Job Hook",
        "merge_request" => "Merge Request Hook",
        "note" => "Note Hook",
        "pipeline" => "Pipeline Hook",
        "push" => "Push Hook",
        "tag_push" => "Tag Push Hook",
        "access_token" => "Resource Access Token Hook",
        "deployment" => "Deployment Hook",
        "emoji" => "Emoji Hook",
        "feature_flag" => "Feature Flag Hook",
        "member" => "Member Hook",
        "release" => "Release Hook",
        "subgroup" => "Subgroup Hook",
        "vulnerability" => "Vulnerability Hook",
        "wiki_page" => "Wiki Page Hook",
        other => panic!("no X-Gitlab-Event known for {other} ({file}); add it to gitlab_hook"),
    }
}

/// The headers a sender puts on a delivery of `file` from fixture folder `dir`, as HEADERS.md
/// says: GitHub's and Gitea's event headers (Gitea also sends GitHub's and Gogs'), GitLab's hook
/// name; Alertmanager, Grafana and generic senders only say JSON.
pub fn delivery_headers(dir: &str, file: &str) -> Vec<(&'static str, String)> {
    let mut headers = vec![("Content-Type", "application/json".to_owned())];
    let event = event_of(file).to_owned();
    // A fresh delivery id each time, as the senders do: a repeated id is a duplicate.
    let delivery = uuid::Uuid::new_v4().to_string();
    match dir {
        "github" => {
            headers.push(("X-GitHub-Event", event));
            headers.push(("X-GitHub-Delivery", delivery));
        }
        "gitea" => {
            for name in ["X-Gitea-Event", "X-Gogs-Event", "X-GitHub-Event"] {
                headers.push((name, event.clone()));
            }
            headers.push(("X-Gitea-Delivery", delivery));
        }
        "gitlab" => headers.push(("X-Gitlab-Event", gitlab_hook(file).to_owned())),
        _ => {}
    }
    headers
}

/// Borrows a list of owned header pairs for [`crate::common::post`].
pub fn borrowed<'a>(headers: &'a [(&'a str, String)]) -> Vec<(&'a str, &'a str)> {
    headers
        .iter()
        .map(|(name, value)| (*name, value.as_str()))
        .collect()
}

/// The lowercase hex HMAC-SHA256 of `body` keyed with `secret`, as GitHub and Gitea sign.
pub fn hmac_sha256_hex(secret: &str, body: &[u8]) -> String {
    let mut mac =
        <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// GitHub's `X-Hub-Signature-256` value for `body`.
pub fn github_signature(secret: &str, body: &[u8]) -> String {
    format!("sha256={}", hmac_sha256_hex(secret, body))
}

/// The service as a separate process, so that it can be killed.
pub struct Process(pub Child);

impl Process {
    pub fn start(data_dir: &std::path::Path, port: u16, vars: &[(&str, &str)]) -> Process {
        Self::start_logging(data_dir, port, vars, Stdio::null())
    }

    /// Like [`Process::start`], with the service's log (standard error) going to `log`.
    pub fn start_logging(
        data_dir: &std::path::Path,
        port: u16,
        vars: &[(&str, &str)],
        log: impl Into<Stdio>,
    ) -> Process {
        let child = Command::new(env!("CARGO_BIN_EXE_pushjet-bridge"))
            .env_clear()
            .env("PUSHJET_BRIDGE_LISTEN", format!("127.0.0.1:{port}"))
            .env("PUSHJET_BRIDGE_DATA_DIR", data_dir)
            .envs(vars.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the binary starts");
        Process(child)
    }

    pub async fn wait_ready(port: u16) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = awc::Client::default()
                .get(format!("http://127.0.0.1:{port}/readyz"))
                .send()
                .await;
            if ready.is_ok_and(|response| response.status() == 200) {
                return;
            }
            assert!(Instant::now() < deadline, "the service did not get ready");
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The process id (the start of its lease holder's name in a shared database).
    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// SIGKILL: no shutdown, no flush, as in a crash.
    pub fn kill(mut self) {
        self.0.kill().expect("the process is killed");
        self.0.wait().expect("the process is reaped");
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}
