//! Shared test helpers: start the real service in-process on a random port with its own data
//! directory.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use actix_web::dev::ServerHandle;
use pushjet_bridge::app::Application;
use pushjet_bridge::config::Settings;
use pushjet_bridge::pushjet::Api;
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
    let settings = Settings::from_vars(vars).expect("valid test settings");
    let application = Application::build(settings)
        .await
        .expect("the service starts");
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
