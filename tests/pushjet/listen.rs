//! `pushjet-bridge client device listen`: the binary against the running service (live messages
//! as JSON lines, a restart of the service survived without loss or repeats, Ctrl-C), and
//! against a server without streams, as the real Pushjet server is (it polls instead).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use pushjet_bridge::pushjet::{DeviceUuid, Importance, MessageText, NewMessage, Title};
use serde_json::Value;

use crate::common::spawn_app_in;

/// How long a line may take to arrive.
const WAIT: Duration = Duration::from_secs(20);

struct Listener {
    child: Child,
    lines: mpsc::Receiver<String>,
    errors: mpsc::Receiver<String>,
}

impl Listener {
    fn start(api: &str, uuid: &DeviceUuid) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pushjet-bridge"))
            .args([
                "client",
                "--api",
                api,
                "device",
                "listen",
                "--uuid",
                uuid.as_str(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let (lines, errors) = (
            forward(child.stdout.take().expect("stdout")),
            forward(child.stderr.take().expect("stderr")),
        );
        Self {
            child,
            lines,
            errors,
        }
    }

    async fn line(&self) -> Value {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            if let Ok(line) = self.lines.try_recv() {
                return serde_json::from_str(&line).expect("a JSON line");
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no line within {WAIT:?}; stderr: {:?}",
                self.errors.try_iter().collect::<Vec<_>>()
            );
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stderr_containing(&self, text: &str) {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            if let Ok(line) = self.errors.try_recv()
                && line.contains(text)
            {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no {text:?} on stderr"
            );
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Ctrl-C, then the exit status.
    fn interrupt(mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(status) = self.child.try_wait().expect("the child can be waited for") {
                assert!(
                    self.lines.try_recv().is_err(),
                    "nothing printed after Ctrl-C"
                );
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "Ctrl-C did not stop it"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn forward(pipe: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    receiver
}

fn message(text: &str) -> NewMessage {
    NewMessage {
        message: MessageText::new(text).expect("a message"),
        title: Title::new("Listen"),
        link: None,
        importance: Importance::MAX,
    }
}

#[actix_web::test]
async fn listen_prints_each_message_at_once_and_survives_a_restart() {
    let temp = tempfile::tempdir().expect("a directory");
    let app = spawn_app_in(temp.path(), &[]).await;
    let api = app.url("/pushjet/");
    let pushjet = app.pushjet();
    let service = pushjet
        .create_service("Listened", None)
        .await
        .expect("a service");
    let secret = service.secret_key().expect("the secret").clone();
    let uuid = DeviceUuid::parse(&uuid::Uuid::new_v4().to_string()).expect("a UUID");
    pushjet
        .device(uuid.clone())
        .subscribe(&service)
        .await
        .expect("subscribed");
    pushjet
        .send(&secret, &message("waiting"))
        .await
        .expect("sent");

    let listener = Listener::start(&api, &uuid);
    let first = listener.line().await;
    assert_eq!(first["message"], "waiting");
    assert_eq!(first["title"], "Listen");
    assert_eq!(first["importance"], 5);
    assert_eq!(
        first["service"]["public_key"],
        service.public_key().as_str()
    );
    pushjet.send(&secret, &message("live")).await.expect("sent");
    assert_eq!(listener.line().await["message"], "live");

    let port = app.port;
    app.stop().await;
    let listen = format!("127.0.0.1:{port}");
    let app = spawn_app_in(temp.path(), &[("PUSHJET_BRIDGE_LISTEN", &listen)]).await;
    listener.stderr_containing("reconnecting").await;
    let pushjet = app.pushjet();
    pushjet
        .send(&secret, &message("while away"))
        .await
        .expect("sent");
    assert_eq!(listener.line().await["message"], "while away");
    pushjet
        .send(&secret, &message("after"))
        .await
        .expect("sent");
    assert_eq!(
        listener.line().await["message"],
        "after",
        "nothing twice, nothing lost"
    );
    assert!(listener.interrupt().success());
    // The server marks what a stream delivered as read a moment later, in batches.
    let deadline = std::time::Instant::now() + WAIT;
    let device = pushjet.device(uuid);
    loop {
        let unread = device.messages().await.expect("read");
        if unread.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "what was printed was consumed: {unread:?}"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A server without streams: `/ws` is unknown (404) and `GET /message` answers once.
async fn serve_without_streams() -> (u16, actix_web::dev::ServerHandle) {
    let served = web::Data::new(std::sync::atomic::AtomicBool::new(false));
    let server = HttpServer::new(move || {
        let served = served.clone();
        App::new().route(
            "/message",
            web::get().to(move || {
                let first = !served.swap(true, std::sync::atomic::Ordering::SeqCst);
                let messages = if first {
                    serde_json::json!([{"message": "polled", "title": "", "link": "", "level": 2, "timestamp": 1_795_839_229,
                        "service": {"public": "09d3-968e09-b3657045baad-be446-e766190db", "name": "Real", "icon": "", "created": 1_795_839_228}}])
                } else {
                    serde_json::json!([])
                };
                async move { HttpResponse::Ok().json(serde_json::json!({ "messages": messages })) }
            }),
        )
    })
    .workers(1)
    .bind(("127.0.0.1", 0))
    .expect("bound");
    let port = server.addrs()[0].port();
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    (port, handle)
}

#[actix_web::test]
async fn against_a_server_without_streams_it_polls_and_says_so() {
    let (port, server) = serve_without_streams().await;
    let uuid = DeviceUuid::parse(&uuid::Uuid::new_v4().to_string()).expect("a UUID");
    let listener = Listener::start(&format!("http://127.0.0.1:{port}/"), &uuid);
    listener
        .stderr_containing("polling GET /message every 5s")
        .await;
    let polled = listener.line().await;
    assert_eq!(polled["message"], "polled");
    assert_eq!(polled["importance"], 2);
    assert!(listener.interrupt().success());
    server.stop(true).await;
}
