//! What the client puts on the wire, read from the raw request a local listener received:
//! form-encoded bodies with the protocol's field names, every key in the body and none in a URL.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use pushjet_bridge::pushjet::{
    Api, DeviceUuid, Error, Importance, Link, MessageText, NewMessage, PublicKey, RequestError,
    SecretKey, Title,
};

const SECRET: &str = "3ad3ed6d089e9ff87f6a4c7247ca5940";
const PUBLIC: &str = "2340-b88c20-098512d83349-4966c-7df2fdc48";
const UUID: &str = "0f0f0f0f-1111-4222-8333-444455556666";
const SERVICE_JSON: &str = r#"{"service": {"created": 1795835178, "icon": "", "name": "n", "public": "2340-b88c20-098512d83349-4966c-7df2fdc48"}}"#;
const OK_JSON: &str = r#"{"status": "ok"}"#;

/// One captured request: its request line, headers (lower-cased names) and body.
struct Captured {
    request_line: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Captured {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn form(&self) -> Vec<(String, String)> {
        serde_urlencoded::from_str(&self.body).expect("a form-encoded body")
    }
}

/// Listens on a free port, answers one request per connection with the next of `answers`, and
/// hands back what it received.
fn listen(answers: &'static [&'static str]) -> (String, std::thread::JoinHandle<Vec<Captured>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://127.0.0.1:{}/pj",
        listener.local_addr().unwrap().port()
    );
    let handle = std::thread::spawn(move || {
        answers
            .iter()
            .map(|answer| serve_one(&listener, answer))
            .collect()
    });
    (url, handle)
}

/// `listen` for a single request.
fn listen_once(answer: &'static str) -> (String, std::thread::JoinHandle<Captured>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://127.0.0.1:{}/pj",
        listener.local_addr().unwrap().port()
    );
    let handle = std::thread::spawn(move || serve_one(&listener, answer));
    (url, handle)
}

fn serve_one(listener: &TcpListener, answer: &str) -> Captured {
    let (mut stream, _) = listener.accept().unwrap();
    let mut raw = Vec::new();
    let mut buffer = [0u8; 4096];
    let (head_end, content_length) = loop {
        let read = stream.read(&mut buffer).unwrap();
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
    while raw.len() < head_end + content_length {
        let read = stream.read(&mut buffer).unwrap();
        raw.extend_from_slice(&buffer[..read]);
    }
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
        answer.len()
    );
    stream.write_all(response.as_bytes()).unwrap();
    let head = String::from_utf8_lossy(&raw[..head_end - 4]).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap().to_owned();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_lowercase(), v.trim().to_owned()))
        .collect();
    Captured {
        request_line,
        headers,
        body: String::from_utf8(raw[head_end..].to_vec()).unwrap(),
    }
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn assert_form_request(captured: &Captured, request_line: &str, form: &[(&str, &str)]) {
    assert_eq!(captured.request_line, request_line);
    assert_eq!(
        captured.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(captured.form(), pairs(form));
    assert!(
        !captured.request_line.contains(SECRET),
        "a secret in the URL: {}",
        captured.request_line
    );
}

fn secret() -> SecretKey {
    SecretKey::parse(SECRET).unwrap()
}

#[actix_web::test]
async fn send_posts_message_form_with_secret_in_the_body() {
    let (url, server) = listen_once(OK_JSON);
    let message = NewMessage {
        message: MessageText::new("Build failed & fixed").unwrap(),
        title: Title::new("CI"),
        link: Some(Link::parse("https://ci.example/run/1?a=b").unwrap()),
        importance: Importance::new(4).unwrap(),
    };
    Api::new(&url)
        .unwrap()
        .send(&secret(), &message)
        .await
        .unwrap();
    assert_form_request(
        &server.join().unwrap(),
        "POST /pj/message HTTP/1.1",
        &[
            ("secret", SECRET),
            ("message", "Build failed & fixed"),
            ("title", "CI"),
            ("link", "https://ci.example/run/1?a=b"),
            ("level", "4"),
        ],
    );
}

#[actix_web::test]
async fn send_leaves_out_an_empty_title_and_missing_link() {
    let (url, server) = listen_once(OK_JSON);
    let message = NewMessage::text(MessageText::new("plain").unwrap());
    Api::new(&url)
        .unwrap()
        .send(&secret(), &message)
        .await
        .unwrap();
    assert_form_request(
        &server.join().unwrap(),
        "POST /pj/message HTTP/1.1",
        &[("secret", SECRET), ("message", "plain"), ("level", "3")],
    );
}

#[actix_web::test]
async fn create_service_posts_name_and_icon() {
    let (url, server) = listen_once(
        r#"{"service": {"created": 1, "icon": "http://i/x.png", "name": "n", "public": "2340-b88c20-098512d83349-4966c-7df2fdc48", "secret": "3ad3ed6d089e9ff87f6a4c7247ca5940"}}"#,
    );
    let service = Api::new(&url)
        .unwrap()
        .create_service("n", Some("http://i/x.png"))
        .await
        .unwrap();
    assert_eq!(service.secret_key(), Some(&secret()));
    assert_form_request(
        &server.join().unwrap(),
        "POST /pj/service HTTP/1.1",
        &[("name", "n"), ("icon", "http://i/x.png")],
    );
}

#[actix_web::test]
async fn opening_by_secret_sends_the_secret_in_the_body_of_a_get() {
    let (url, server) = listen_once(SERVICE_JSON);
    Api::new(&url)
        .unwrap()
        .service_by_secret(secret())
        .await
        .unwrap();
    assert_form_request(
        &server.join().unwrap(),
        "GET /pj/service HTTP/1.1",
        &[("secret", SECRET)],
    );
}

#[actix_web::test]
async fn opening_by_public_key_sends_service() {
    let (url, server) = listen_once(SERVICE_JSON);
    Api::new(&url)
        .unwrap()
        .service_by_public_key(&PublicKey::parse(PUBLIC).unwrap())
        .await
        .unwrap();
    assert_form_request(
        &server.join().unwrap(),
        "GET /pj/service HTTP/1.1",
        &[("service", PUBLIC)],
    );
}

#[actix_web::test]
async fn edit_and_delete_send_patch_and_delete_forms() {
    let (url, server) = listen(&[SERVICE_JSON, OK_JSON, OK_JSON]);
    let mut service = Api::new(&url)
        .unwrap()
        .service_by_secret(secret())
        .await
        .unwrap();
    service.edit(Some("new"), Some("")).await.unwrap();
    service.delete().await.unwrap();
    let captured = server.join().unwrap();
    assert_form_request(
        &captured[0],
        "GET /pj/service HTTP/1.1",
        &[("secret", SECRET)],
    );
    assert_form_request(
        &captured[1],
        "PATCH /pj/service HTTP/1.1",
        &[("secret", SECRET), ("name", "new"), ("icon", "")],
    );
    assert_form_request(
        &captured[2],
        "DELETE /pj/service HTTP/1.1",
        &[("secret", SECRET)],
    );
}

#[actix_web::test]
async fn device_calls_send_uuid_and_service_in_the_body() {
    let uuid = DeviceUuid::parse(UUID).unwrap();
    let public = PublicKey::parse(PUBLIC).unwrap();

    let (url, server) = listen_once(SERVICE_JSON);
    Api::new(&url)
        .unwrap()
        .device(uuid.clone())
        .subscribe(&public)
        .await
        .unwrap();
    assert_form_request(
        &server.join().unwrap(),
        "POST /pj/subscription HTTP/1.1",
        &[("uuid", UUID), ("service", PUBLIC)],
    );

    let (url, server) = listen_once(OK_JSON);
    Api::new(&url)
        .unwrap()
        .device(uuid.clone())
        .unsubscribe(&public)
        .await
        .unwrap();
    assert_form_request(
        &server.join().unwrap(),
        "DELETE /pj/subscription HTTP/1.1",
        &[("uuid", UUID), ("service", PUBLIC)],
    );

    let (url, server) = listen_once(r#"{"subscriptions": []}"#);
    Api::new(&url)
        .unwrap()
        .device(uuid.clone())
        .subscriptions()
        .await
        .unwrap();
    assert_form_request(
        &server.join().unwrap(),
        "GET /pj/subscription HTTP/1.1",
        &[("uuid", UUID)],
    );

    let (url, server) = listen_once(r#"{"messages": []}"#);
    Api::new(&url)
        .unwrap()
        .device(uuid.clone())
        .messages()
        .await
        .unwrap();
    assert_form_request(
        &server.join().unwrap(),
        "GET /pj/message HTTP/1.1",
        &[("uuid", UUID)],
    );

    let (url, server) = listen_once(OK_JSON);
    Api::new(&url)
        .unwrap()
        .device(uuid)
        .mark_read()
        .await
        .unwrap();
    assert_form_request(
        &server.join().unwrap(),
        "DELETE /pj/message HTTP/1.1",
        &[("uuid", UUID)],
    );
}

#[actix_web::test]
async fn a_server_that_never_answers_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://127.0.0.1:{}/",
        listener.local_addr().unwrap().port()
    );
    let holder = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        std::thread::sleep(Duration::from_secs(2));
        drop(stream);
    });
    let api = Api::with_timeout(&url, Duration::from_millis(300)).unwrap();
    let error = api
        .send(&secret(), &NewMessage::text(MessageText::new("x").unwrap()))
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::Request(RequestError::Timeout(_))),
        "{error:?}"
    );
    holder.join().unwrap();
}
