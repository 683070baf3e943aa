//! The real Pushjet server (Werkzeug's development server) answers `HTTP/1.0` without
//! `Connection: keep-alive` and closes each connection once it has answered. The client must not
//! put such a connection back in its pool: a request sent on it afterwards is never read.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pushjet_bridge::pushjet::{Api, MessageText, NewMessage, SecretKey};

const SECRET: &str = "3ad3ed6d089e9ff87f6a4c7247ca5940";
const SERVICE_JSON: &str = r#"{"service": {"created": 1795835178, "icon": "", "name": "n", "public": "2340-b88c20-098512d83349-4966c-7df2fdc48"}}"#;
const OK_JSON: &str = r#"{"status": "ok"}"#;

/// How long a connection stays open after its answer, unread, before the server closes it: long
/// enough that the client sees it as alive when it takes it from its pool.
const LINGER: Duration = Duration::from_millis(300);

/// A server that answers each connection's first request like Werkzeug does (`HTTP/1.0`, a
/// `Content-Length`, no `Connection` header), reads nothing more, and closes it after [`LINGER`].
/// Answers `GET` with a service and anything else with `{"status": "ok"}`; counts requests.
fn http10_server() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://127.0.0.1:{}/",
        listener.local_addr().unwrap().port()
    );
    let served = Arc::new(AtomicUsize::new(0));
    let counter = served.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let counter = counter.clone();
            std::thread::spawn(move || answer_once(stream, &counter));
        }
    });
    (url, served)
}

fn answer_once(mut stream: TcpStream, served: &AtomicUsize) {
    let mut raw = Vec::new();
    let mut buffer = [0u8; 4096];
    let (head_end, length) = loop {
        let Ok(read) = stream.read(&mut buffer) else {
            return;
        };
        if read == 0 {
            return;
        }
        raw.extend_from_slice(&buffer[..read]);
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_lowercase();
            let length = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse::<usize>().unwrap());
            break (end + 4, length);
        }
    };
    while raw.len() < head_end + length {
        let Ok(read) = stream.read(&mut buffer) else {
            return;
        };
        if read == 0 {
            return;
        }
        raw.extend_from_slice(&buffer[..read]);
    }
    served.fetch_add(1, Ordering::SeqCst);
    let body = if raw.starts_with(b"GET ") {
        SERVICE_JSON
    } else {
        OK_JSON
    };
    let answer = format!(
        "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nServer: Werkzeug/0.9.6 Python/2.7.18\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(answer.as_bytes());
    std::thread::sleep(LINGER);
}

fn secret() -> SecretKey {
    SecretKey::parse(SECRET).unwrap()
}

#[actix_web::test]
async fn requests_in_a_row_to_a_server_that_closes_every_connection_all_succeed() {
    let (url, served) = http10_server();
    let api = Api::new(&url).unwrap();
    let message = NewMessage::text(MessageText::new("one of several").unwrap());
    for attempt in 0..4 {
        api.send(&secret(), &message)
            .await
            .unwrap_or_else(|error| panic!("send {attempt} failed: {error}"));
    }
    let mut service = api.service_by_secret(secret()).await.unwrap();
    service
        .edit(Some("renamed"), None)
        .await
        .expect("the edit after opening the service");
    assert_eq!(served.load(Ordering::SeqCst), 6);
}

/// An HTTP/1.1 server (actix, as Pushjet-compatible servers in front of a proxy are) that keeps
/// connections (it reads every body: actix closes a connection whose body was left unread) and
/// echoes `Connection: close` to a request asking for it; counts connections.
fn http11_server() -> (String, Arc<AtomicUsize>, actix_web::dev::ServerHandle) {
    use actix_web::{App, HttpResponse, HttpServer, web};
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    let server = HttpServer::new(|| {
        App::new().default_service(web::to(|_body: web::Bytes| async {
            HttpResponse::Ok()
                .content_type("application/json")
                .body(OK_JSON)
        }))
    })
    .workers(1)
    .on_connect(move |_, _| {
        counter.fetch_add(1, Ordering::SeqCst);
    })
    .bind("127.0.0.1:0")
    .unwrap();
    let url = format!("http://{}/", server.addrs()[0]);
    let server = server.run();
    let handle = server.handle();
    actix_web::rt::spawn(server);
    (url, connections, handle)
}

#[actix_web::test]
async fn requests_in_a_row_to_a_server_that_keeps_connections_share_one() {
    let (url, connections, server) = http11_server();
    let api = Api::new(&url).unwrap();
    let message = NewMessage::text(MessageText::new("one of many").unwrap());
    for attempt in 0..20 {
        api.send(&secret(), &message)
            .await
            .unwrap_or_else(|error| panic!("send {attempt} failed: {error}"));
    }
    // The first request asks to close (nothing is known of the server yet); its HTTP/1.1 answer
    // echoes the close but shows a server that keeps connections, so the other 19 share one.
    assert_eq!(connections.load(Ordering::SeqCst), 2);
    server.stop(true).await;
}
