//! A Pushjet API in front of the real one that fails on cue: answers 500, 429 with
//! `Retry-After`, 400 for the secret, hangs past the client's timeout, or forwards the request
//! untouched; by script, every other request, or in phases that repeat over time (flapping).
//! Counts what it saw and what it forwarded, and notes when each request arrived.

use std::collections::VecDeque;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};

/// What the upstream does with one request.
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// 500 with an HTML page, as a crashing Flask server answers.
    ServerError,
    /// 429 with `Retry-After` in seconds, as a rate-limiting proxy answers.
    TooManyRequests(u64),
    /// No answer for this long, then a 500.
    Hang(Duration),
    /// 400 "Invalid secret" (error id 3), as Pushjet answers a secret it does not know: a
    /// permanent failure.
    InvalidSecret,
    /// Pass the request on to the real API.
    Forward,
}

/// Flapping: when it started, and its phases (how long, what happens) in order.
type Flapping = (Instant, Vec<(Duration, Fault)>);

#[derive(Default)]
struct State {
    target: Mutex<String>,
    script: Mutex<VecDeque<Fault>>,
    flapping: AtomicBool,
    /// Phases repeated from the instant they were set, when there are any.
    phases: Mutex<Option<Flapping>>,
    seen: AtomicUsize,
    forwarded: AtomicUsize,
    arrivals: Mutex<Vec<SystemTime>>,
}

/// A running faulty upstream.
pub struct Flaky {
    /// Its base URL, to use as `PUSHJET_API_URL`.
    pub url: String,
    state: Arc<State>,
    handle: ServerHandle,
}

impl Flaky {
    /// Starts one on a free port of 127.0.0.1, forwarding to nothing yet.
    pub fn start() -> Flaky {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        Self::start_on(listener, Arc::default())
    }

    /// Starts it again on the same port after [`Flaky::stop`], keeping its counters, script and
    /// target.
    pub fn restart(&self) -> Flaky {
        let address = self.url.trim_start_matches("http://").trim_end_matches('/');
        let listener = TcpListener::bind(address).expect("the same port again");
        Self::start_on(listener, self.state.clone())
    }

    fn start_on(listener: TcpListener, state: Arc<State>) -> Flaky {
        let url = format!("http://{}/", listener.local_addr().expect("an address"));
        let shared = web::Data::from(state.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(shared.clone())
                .default_service(web::to(handle))
        })
        .workers(1)
        .listen(listener)
        .expect("the flaky upstream listens")
        .run();
        let handle = server.handle();
        actix_rt::spawn(server);
        Flaky { url, state, handle }
    }

    /// Where forwarded requests go: the real API's base URL (with its path, e.g. `/pushjet/`).
    pub fn forward_to(&self, target: &str) {
        *self.state.target.lock().expect("not poisoned") = target.trim_end_matches('/').to_owned();
    }

    /// The next requests' fates, in order; after them, requests are forwarded.
    pub fn script(&self, faults: &[Fault]) {
        self.state
            .script
            .lock()
            .expect("not poisoned")
            .extend(faults.iter().copied());
    }

    /// Forgets the rest of the script.
    pub fn clear_script(&self) {
        self.state.script.lock().expect("not poisoned").clear();
    }

    /// When on, every other request (after the script) fails with a 500.
    pub fn flap(&self, on: bool) {
        self.state.flapping.store(on, Ordering::SeqCst);
    }

    /// From now on, after the script, each request meets the fault of the phase it arrives in:
    /// the phases follow each other for their durations and start over after the last. Empty
    /// stops it.
    pub fn flap_through(&self, phases: &[(Duration, Fault)]) {
        let cycle = (!phases.is_empty()).then(|| (Instant::now(), phases.to_vec()));
        *self.state.phases.lock().expect("not poisoned") = cycle;
    }

    /// When each request arrived, in order, on the system clock.
    pub fn arrivals(&self) -> Vec<SystemTime> {
        self.state.arrivals.lock().expect("not poisoned").clone()
    }

    /// How many requests arrived.
    pub fn seen(&self) -> usize {
        self.state.seen.load(Ordering::SeqCst)
    }

    /// How many requests were forwarded and answered by the real API.
    pub fn forwarded(&self) -> usize {
        self.state.forwarded.load(Ordering::SeqCst)
    }

    /// Stops listening: the upstream is down (connections are refused).
    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }
}

async fn handle(request: HttpRequest, body: web::Bytes, state: web::Data<State>) -> HttpResponse {
    state
        .arrivals
        .lock()
        .expect("not poisoned")
        .push(SystemTime::now());
    let number = state.seen.fetch_add(1, Ordering::SeqCst);
    let scripted = state.script.lock().expect("not poisoned").pop_front();
    let fault = match scripted {
        Some(fault) => fault,
        None if state.flapping.load(Ordering::SeqCst) && number.is_multiple_of(2) => {
            Fault::ServerError
        }
        None => phase_now(&state).unwrap_or(Fault::Forward),
    };
    match fault {
        Fault::ServerError => HttpResponse::InternalServerError()
            .content_type("text/html")
            .body("<h1>Internal Server Error</h1>"),
        Fault::TooManyRequests(seconds) => HttpResponse::TooManyRequests()
            .insert_header(("Retry-After", seconds.to_string()))
            .body("slow down"),
        Fault::Hang(duration) => {
            actix_web::rt::time::sleep(duration).await;
            HttpResponse::InternalServerError().body("too late")
        }
        Fault::InvalidSecret => HttpResponse::BadRequest()
            .content_type("application/json")
            .body(r#"{"error": {"message": "Invalid secret", "id": 3}}"#),
        Fault::Forward => forward(&request, body, &state).await,
    }
}

/// The fault of the flapping phase in force, if the upstream flaps.
fn phase_now(state: &State) -> Option<Fault> {
    let phases = state.phases.lock().expect("not poisoned");
    let (started, phases) = phases.as_ref()?;
    let cycle: Duration = phases.iter().map(|(length, _)| *length).sum();
    let mut into = Duration::from_nanos(
        u64::try_from(started.elapsed().as_nanos() % cycle.as_nanos().max(1)).unwrap_or(0),
    );
    for (length, fault) in phases {
        if into < *length {
            return Some(*fault);
        }
        into -= *length;
    }
    phases.last().map(|(_, fault)| *fault)
}

async fn forward(request: &HttpRequest, body: web::Bytes, state: &State) -> HttpResponse {
    let target = state.target.lock().expect("not poisoned").clone();
    let url = format!("{target}{}", request.uri().path());
    let mut outgoing = awc::Client::default().request(request.method().clone(), url);
    if let Some(content_type) = request.headers().get("content-type") {
        outgoing = outgoing.insert_header(("content-type", content_type.clone()));
    }
    match outgoing.send_body(body).await {
        Ok(mut response) => {
            let status = response.status();
            let bytes = response.body().await.unwrap_or_default();
            if status.is_success() {
                state.forwarded.fetch_add(1, Ordering::SeqCst);
            }
            HttpResponse::build(status)
                .content_type("text/html; charset=utf-8")
                .body(bytes)
        }
        Err(error) => HttpResponse::BadGateway().body(error.to_string()),
    }
}
