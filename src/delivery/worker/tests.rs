use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::net::TcpListener;
use std::sync::Mutex;
use std::time::Instant;

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpResponse, HttpServer, web};
use tempfile::TempDir;

use super::*;
use crate::pushjet::ApiUrl;
use crate::delivery::outbox::records::Enqueued;
use crate::delivery::redb::RedbOutbox;
use crate::delivery::test_support::{
    FailingBackend, fast_settings, message, route, routes, secret_for,
};

/// How the scripted upstream answers one request.
#[derive(Debug, Clone)]
enum Answer {
    Ok,
    ServerError,
    TooManyRequests {
        retry_after: u64,
    },
    ServiceNotFound,
    /// Waits this long, then answers ok.
    Slow(Duration),
}

/// A request the upstream received.
#[derive(Debug, Clone)]
struct Arrival {
    secret: String,
    message: String,
    at: Instant,
    accepted: bool,
}

/// A Pushjet stand-in on 127.0.0.1 that answers from a script (then `Ok` once it runs out).
#[derive(Default)]
struct Script {
    answers: Mutex<VecDeque<Answer>>,
    arrivals: Mutex<Vec<Arrival>>,
}

impl Script {
    fn new(answers: &[Answer]) -> Arc<Self> {
        Arc::new(Self {
            answers: Mutex::new(answers.iter().cloned().collect()),
            arrivals: Mutex::default(),
        })
    }

    fn arrivals(&self) -> Vec<Arrival> {
        self.arrivals.lock().unwrap().clone()
    }

    /// How many times each message was accepted (answered 200 and not timed out).
    fn accepted(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for arrival in self.arrivals().into_iter().filter(|a| a.accepted) {
            *counts.entry(arrival.message).or_default() += 1;
        }
        counts
    }
}

async fn pushjet_message(
    script: web::Data<Script>,
    form: web::Form<HashMap<String, String>>,
) -> HttpResponse {
    let answer = script
        .answers
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or(Answer::Ok);
    let mut arrival = Arrival {
        secret: form.get("secret").cloned().unwrap_or_default(),
        message: form.get("message").cloned().unwrap_or_default(),
        at: Instant::now(),
        accepted: matches!(answer, Answer::Ok),
    };
    let index = {
        let mut arrivals = script.arrivals.lock().unwrap();
        arrivals.push(arrival.clone());
        arrivals.len() - 1
    };
    let ok = || HttpResponse::Ok().body(r#"{"status": "ok"}"#);
    match answer {
        Answer::Ok => ok(),
        Answer::ServerError => HttpResponse::InternalServerError().body("<html>500</html>"),
        Answer::TooManyRequests { retry_after } => HttpResponse::TooManyRequests()
            .insert_header(("Retry-After", retry_after.to_string()))
            .body("slow down"),
        Answer::ServiceNotFound => {
            HttpResponse::NotFound().body(r#"{"error": {"id": 6, "message": "Service not found"}}"#)
        }
        Answer::Slow(delay) => {
            actix_rt::time::sleep(delay).await;
            arrival.accepted = true;
            script.arrivals.lock().unwrap()[index] = arrival;
            ok()
        }
    }
}

struct Upstream {
    url: ApiUrl,
    server: ServerHandle,
}

fn start_upstream(script: &Arc<Script>) -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let data = web::Data::from(script.clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/message", web::post().to(pushjet_message))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    let handle = server.handle();
    actix_rt::spawn(server);
    Upstream {
        url: ApiUrl::parse(&format!("http://127.0.0.1:{port}/")).unwrap(),
        server: handle,
    }
}

fn shared(names: &[&str]) -> SharedRoutes {
    Arc::new(ArcSwap::from_pointee(routes(names)))
}

async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn enqueue(outbox: &Outbox, route_name: &str, texts: &[&str]) -> Vec<u64> {
    let messages = texts.iter().map(|text| message(text)).collect();
    match outbox.enqueue(&route(route_name), messages, None).await {
        Ok(Enqueued::Queued(ids)) => ids,
        other => panic!("enqueue failed: {other:?}"),
    }
}

struct Running {
    _dir: TempDir,
    outbox: Outbox,
    script: Arc<Script>,
    upstream: Upstream,
    dispatcher: DispatcherHandle,
}

fn run_with(answers: &[Answer], settings: &DeliverySettings) -> Running {
    let dir = TempDir::new().unwrap();
    let outbox = Outbox::open(dir.path(), settings).unwrap();
    let script = Script::new(answers);
    let upstream = start_upstream(&script);
    let dispatcher = spawn(
        outbox.clone(),
        shared(&["gh"]),
        upstream.url.clone(),
        settings,
        Arc::default(),
    );
    Running {
        _dir: dir,
        outbox,
        script,
        upstream,
        dispatcher,
    }
}

impl Running {
    async fn stop(self) -> ShutdownReport {
        let report = self.dispatcher.shutdown(Duration::from_secs(2)).await;
        self.upstream.server.stop(false).await;
        report
    }
}

#[actix_web::test]
async fn a_server_error_is_retried_and_the_notification_arrives_once() {
    let running = run_with(&[Answer::ServerError], &fast_settings());
    enqueue(&running.outbox, "gh", &["deployed"]).await;
    eventually("delivered", || running.outbox.pending_count() == 0).await;
    let arrivals = running.script.arrivals();
    assert_eq!(arrivals.len(), 2);
    assert_eq!(running.script.accepted()["deployed"], 1);
    assert_eq!(arrivals[0].secret, secret_for("gh").expose());
    assert_eq!(running.outbox.dead_letter_count().await.unwrap(), 0);
    running.stop().await;
}

#[actix_web::test]
async fn too_many_requests_waits_for_retry_after() {
    let running = run_with(
        &[Answer::TooManyRequests { retry_after: 1 }],
        &fast_settings(),
    );
    enqueue(&running.outbox, "gh", &["later"]).await;
    eventually("delivered", || running.outbox.pending_count() == 0).await;
    let arrivals = running.script.arrivals();
    assert_eq!(arrivals.len(), 2);
    let waited = arrivals[1].at - arrivals[0].at;
    assert!(waited >= Duration::from_secs(1), "retried after {waited:?}");
    assert_eq!(running.script.accepted()["later"], 1);
    running.stop().await;
}

#[actix_web::test]
async fn a_deleted_service_is_dead_lettered_at_once_and_can_be_retried() {
    let running = run_with(&[Answer::ServiceNotFound], &fast_settings());
    let ids = enqueue(&running.outbox, "gh", &["orphan"]).await;
    eventually("dead-lettered", || running.outbox.pending_count() == 0).await;
    actix_rt::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(running.script.arrivals().len(), 1);
    let dead = running.outbox.dead_letters(None, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].id, ids[0]);
    assert!(
        dead[0].reason.contains("PUSHJET_BRIDGE_ROUTE_GH_SECRET"),
        "{}",
        dead[0].reason
    );

    running.outbox.retry_dead_letter(ids[0]).await.unwrap();
    eventually("re-sent", || running.script.arrivals().len() == 2).await;
    eventually("delivered", || running.outbox.pending_count() == 0).await;
    assert_eq!(running.script.accepted()["orphan"], 1);
    assert_eq!(running.outbox.dead_letter_count().await.unwrap(), 0);
    running.stop().await;
}

#[actix_web::test]
async fn a_send_that_times_out_is_sent_again() {
    let settings = DeliverySettings {
        send_timeout: Duration::from_millis(200),
        ..fast_settings()
    };
    let running = run_with(&[Answer::Slow(Duration::from_millis(600))], &settings);
    enqueue(&running.outbox, "gh", &["slow"]).await;
    eventually("delivered", || running.outbox.pending_count() == 0).await;
    assert_eq!(running.script.arrivals().len(), 2);
    assert_eq!(running.outbox.dead_letter_count().await.unwrap(), 0);
    running.stop().await;
}

#[actix_web::test]
async fn transient_failures_become_a_dead_letter_after_retry_for() {
    let settings = DeliverySettings {
        retry_for: Duration::from_millis(300),
        ..fast_settings()
    };
    let failing = vec![Answer::ServerError; 1000];
    let running = run_with(&failing, &settings);
    enqueue(&running.outbox, "gh", &["doomed"]).await;
    eventually("given up", || running.outbox.pending_count() == 0).await;
    let dead = running.outbox.dead_letters(None, 10).await.unwrap();
    assert!(
        dead[0].reason.starts_with("gave up after"),
        "{}",
        dead[0].reason
    );
    assert!(dead[0].attempts >= 2);
    assert_eq!(dead[0].attempts as usize, running.script.arrivals().len());
    running.stop().await;
}

#[actix_web::test]
async fn a_retry_holds_back_the_routes_later_notifications() {
    let running = run_with(&[Answer::ServerError], &fast_settings());
    enqueue(&running.outbox, "gh", &["first", "second", "third"]).await;
    eventually("delivered", || running.outbox.pending_count() == 0).await;
    let order: Vec<String> = running
        .script
        .arrivals()
        .into_iter()
        .map(|arrival| arrival.message)
        .collect();
    assert_eq!(order, ["first", "first", "second", "third"]);
    running.stop().await;
}

/// Records each message with how many notifications the outbox still held when it was sent.
struct Observing {
    outbox: Outbox,
    sent: RefCell<Vec<(String, u64)>>,
}

impl super::Upstream for Rc<Observing> {
    async fn send(&self, _secret: &SecretKey, message: &NewMessage) -> Result<(), Error> {
        let pending = self.outbox.pending_count();
        self.sent
            .borrow_mut()
            .push((message.message.as_str().to_owned(), pending));
        Ok(())
    }
}

#[actix_web::test]
async fn a_routes_next_notification_goes_out_while_the_outcome_before_it_is_committed() {
    let settings = fast_settings();
    let slow_disk = FailingBackend::new().with_sync_delay(Duration::from_millis(100));
    let outbox = Outbox::new(RedbOutbox::open_with_backend(slow_disk, None, &settings).unwrap());
    let texts = ["1", "2", "3", "4", "5"];
    enqueue(&outbox, "gh", &texts).await;
    let observing = Rc::new(Observing {
        outbox: outbox.clone(),
        sent: RefCell::default(),
    });
    let dispatcher = spawn_with(
        outbox.clone(),
        shared(&["gh"]),
        &settings,
        Arc::default(),
        {
            let observing = observing.clone();
            move || observing
        },
    );
    eventually("delivered", || outbox.pending_count() == 0).await;
    dispatcher.shutdown(Duration::from_secs(1)).await;

    let sent = observing.sent.borrow();
    let order: Vec<&str> = sent.iter().map(|(text, _)| text.as_str()).collect();
    assert_eq!(order, texts, "in order, each once");
    assert_eq!(
        sent[1].1, 5,
        "the second was sent before the first's removal was committed"
    );
}

#[actix_web::test]
async fn a_route_that_is_no_longer_configured_is_dead_lettered_without_sending() {
    let running = run_with(&[], &fast_settings());
    enqueue(&running.outbox, "removed", &["x"]).await;
    eventually("dead-lettered", || running.outbox.pending_count() == 0).await;
    let dead = running.outbox.dead_letters(None, 10).await.unwrap();
    assert!(dead[0].reason.contains("no longer configured"));
    assert!(running.script.arrivals().is_empty());
    running.stop().await;
}

#[actix_web::test]
async fn notifications_left_pending_by_a_previous_run_are_sent_on_start() {
    let dir = TempDir::new().unwrap();
    let settings = fast_settings();
    let outbox = Outbox::open(dir.path(), &settings).unwrap();
    enqueue(&outbox, "gh", &["before", "crash"]).await;
    drop(outbox);

    let outbox = Outbox::open(dir.path(), &settings).unwrap();
    let script = Script::new(&[]);
    let upstream = start_upstream(&script);
    let dispatcher = spawn(
        outbox.clone(),
        shared(&["gh"]),
        upstream.url,
        &settings,
        Arc::default(),
    );
    eventually("delivered", || outbox.pending_count() == 0).await;
    let order: Vec<String> = script.arrivals().into_iter().map(|a| a.message).collect();
    assert_eq!(order, ["before", "crash"]);
    dispatcher.shutdown(Duration::from_secs(1)).await;
    upstream.server.stop(false).await;
}

#[actix_web::test]
async fn shutdown_lets_a_send_in_flight_finish_within_the_grace_period() {
    let running = run_with(
        &[Answer::Slow(Duration::from_millis(300))],
        &fast_settings(),
    );
    enqueue(&running.outbox, "gh", &["finishing"]).await;
    eventually("in flight", || running.script.arrivals().len() == 1).await;
    let outbox = running.outbox.clone();
    let report = running.stop().await;
    assert_eq!(
        report,
        ShutdownReport {
            finished: 1,
            abandoned: 0
        }
    );
    assert_eq!(outbox.pending_count(), 0);
}

#[actix_web::test]
async fn shutdown_leaves_a_send_that_outlasts_the_grace_period_pending() {
    let dir = TempDir::new().unwrap();
    let settings = fast_settings();
    let outbox = Outbox::open(dir.path(), &settings).unwrap();
    let script = Script::new(&[Answer::Slow(Duration::from_secs(5))]);
    let upstream = start_upstream(&script);
    let dispatcher = spawn(
        outbox.clone(),
        shared(&["gh"]),
        upstream.url,
        &settings,
        Arc::default(),
    );
    enqueue(&outbox, "gh", &["interrupted"]).await;
    eventually("in flight", || script.arrivals().len() == 1).await;
    let report = dispatcher.shutdown(Duration::from_millis(100)).await;
    assert_eq!(report.abandoned, 1);
    assert_eq!(outbox.pending_count(), 1);
    drop(outbox);
    upstream.server.stop(false).await;
    assert_eq!(
        Outbox::open(dir.path(), &settings).unwrap().pending_count(),
        1
    );
}

/// Counts sends in flight, overall and per secret, and records the order per secret.
#[derive(Default)]
struct Counting {
    in_flight: RefCell<HashMap<String, usize>>,
    most_at_once: RefCell<usize>,
    most_per_route: RefCell<usize>,
    order: RefCell<HashMap<String, Vec<String>>>,
}

impl super::Upstream for Rc<Counting> {
    async fn send(&self, secret: &SecretKey, message: &NewMessage) -> Result<(), Error> {
        let key = secret.expose().to_owned();
        {
            let mut in_flight = self.in_flight.borrow_mut();
            let mine = in_flight.entry(key.clone()).or_default();
            *mine += 1;
            let mine = *mine;
            let total = in_flight.values().sum::<usize>();
            let mut most = self.most_at_once.borrow_mut();
            *most = (*most).max(total);
            let mut most_per_route = self.most_per_route.borrow_mut();
            *most_per_route = (*most_per_route).max(mine);
        }
        actix_rt::time::sleep(Duration::from_millis(15)).await;
        self.order
            .borrow_mut()
            .entry(key.clone())
            .or_default()
            .push(message.message.as_str().to_owned());
        *self.in_flight.borrow_mut().entry(key).or_default() -= 1;
        Ok(())
    }
}

#[actix_web::test]
async fn routes_are_sent_in_parallel_up_to_the_limit_each_in_order() {
    let dir = TempDir::new().unwrap();
    let settings = DeliverySettings {
        concurrency: 2,
        ..fast_settings()
    };
    let outbox = Outbox::open(dir.path(), &settings).unwrap();
    let names = ["a", "b", "c"];
    for name in names {
        let texts: Vec<String> = (1..=4).map(|n| format!("{name}{n}")).collect();
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        enqueue(&outbox, name, &texts).await;
    }
    let counting = Rc::new(Counting::default());
    let dispatcher = spawn_with(outbox.clone(), shared(&names), &settings, Arc::default(), {
        let counting = counting.clone();
        move || counting
    });
    eventually("delivered", || outbox.pending_count() == 0).await;
    dispatcher.shutdown(Duration::from_secs(1)).await;

    assert_eq!(*counting.most_at_once.borrow(), 2);
    assert_eq!(*counting.most_per_route.borrow(), 1);
    let order = counting.order.borrow();
    for name in names {
        let expected: Vec<String> = (1..=4).map(|n| format!("{name}{n}")).collect();
        assert_eq!(order[secret_for(name).expose()], expected);
    }
}
