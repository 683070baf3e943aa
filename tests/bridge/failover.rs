//! Replicas as processes of the real binary sharing one PostgreSQL outbox, killed with SIGKILL as
//! in a crash: three replicas under a flapping upstream, one killed and restarted and one killed
//! for good while thousands of webhooks arrive, deliver every accepted one, in order per route,
//! with no duplicates beyond the documented crash window; a replica killed mid-send keeps its
//! route until its lease lapses, then another sends; a replica cut off from the database mid-send,
//! whose route another took over, sends again once it is back; one cut off from its database
//! answers webhooks 503 and `/readyz` 503, then recovers by itself; `dead-letters` works on the
//! database from a data directory with no outbox; a replica that cannot reach the database at
//! start exits with the reason.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use futures_util::future::join_all;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::common::flaky::{Fault, Flaky};
use crate::common::postgres::TestPostgres;
use crate::common::relay::Relay;
use crate::common::{NoAnswer, expect_messages, pushjet_with_services, try_post};
use crate::support::{Process, free_port};

pub(crate) const JSON: (&str, &str) = ("Content-Type", "application/json");
/// The header the generic JSON source takes a delivery id from.
pub(crate) const DELIVERY_ID: &str = "Idempotency-Key";

/// One replica: the real binary in a data directory of its own, on a port of its own, killed
/// and started again at will.
pub(crate) struct Replica {
    dir: TempDir,
    pub(crate) port: u16,
    vars: Vec<(String, String)>,
    process: Option<Process>,
}

impl Replica {
    /// Starts one with `vars` (the data directory and the address are its own).
    pub(crate) fn start(vars: &[(String, String)]) -> Replica {
        let mut replica = Replica {
            dir: tempfile::tempdir().expect("a data directory"),
            port: free_port(),
            vars: vars.to_vec(),
            process: None,
        };
        replica.restart();
        replica
    }

    /// Starts it (again) on the same data directory and port.
    fn restart(&mut self) {
        let vars: Vec<(&str, &str)> = self
            .vars
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        self.process = Some(Process::start(self.dir.path(), self.port, &vars));
    }

    /// SIGKILL; the time it was killed.
    fn kill(&mut self) -> SystemTime {
        self.process.take().expect("a running replica").kill();
        SystemTime::now()
    }

    /// The process id of the running replica.
    fn pid(&self) -> u32 {
        self.process.as_ref().expect("a running replica").pid()
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

/// The variables of replicas sending routes `r0`, `r1`, … with `secrets` through `api`, sharing
/// `database`, plus `extra`.
pub(crate) fn replica_vars(
    api: &str,
    database: &str,
    secrets: &[String],
    extra: &[(&str, &str)],
) -> Vec<(String, String)> {
    let names: Vec<String> = (0..secrets.len())
        .map(|route| format!("r{route}"))
        .collect();
    let mut vars = vec![
        ("PUSHJET_API_URL".to_owned(), api.to_owned()),
        (
            "PUSHJET_BRIDGE_EMBEDDED_PUSHJET".to_owned(),
            "false".to_owned(),
        ),
        ("PUSHJET_BRIDGE_ROUTES".to_owned(), names.join(",")),
        (
            "PUSHJET_BRIDGE_DATABASE_URL".to_owned(),
            database.to_owned(),
        ),
    ];
    for (name, secret) in names.iter().zip(secrets) {
        vars.push((
            format!("PUSHJET_BRIDGE_ROUTE_{}_SECRET", name.to_ascii_uppercase()),
            secret.clone(),
        ));
    }
    vars.extend(
        extra
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned())),
    );
    vars
}

/// A client of the test database.
async fn connect(database: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(database, tokio_postgres::NoTls)
        .await
        .expect("the test database takes connections");
    tokio::spawn(connection);
    client
}

/// A count from the database.
async fn count(client: &tokio_postgres::Client, sql: &str, params: &[&str]) -> i64 {
    let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
        .iter()
        .map(|param| param as &(dyn tokio_postgres::types::ToSql + Sync))
        .collect();
    client
        .query_one(sql, &params)
        .await
        .unwrap_or_else(|error| panic!("{sql}: {error}"))
        .get(0)
}

/// Milliseconds since the epoch, as the leases are dated.
fn epoch_millis(time: SystemTime) -> i64 {
    let since = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("after 1970");
    i64::try_from(since.as_millis()).expect("a time in range")
}

/// The chaos test's numbers: routes posted to at once, each one's webhooks in sequence.
const ROUTES: usize = 8;
const PER_ROUTE: usize = 375;
/// Routes a replica sends at once (`PUSHJET_BRIDGE_DELIVERY_CONCURRENCY`).
const CONCURRENCY: usize = 4;
/// Replicas killed with SIGKILL during the run (one restarted, one not).
const KILLS: usize = 2;
/// Every how many webhooks of a route one is delivered again.
const REDELIVER_EVERY: usize = 25;

/// What the senders saw, shared by the route senders (one thread).
#[derive(Default)]
struct Sending {
    /// The next replica to post to, round robin.
    next: Cell<usize>,
    /// Webhooks answered 202 by each replica.
    accepted_by: RefCell<Vec<usize>>,
    /// Webhooks whose first answer was lost, answered "duplicate" when posted again: the lost
    /// request had been committed.
    confirmed_duplicates: Cell<usize>,
    /// Webhooks accepted, however.
    accepted: Cell<usize>,
    /// Accepted webhooks delivered again, answered "duplicate".
    redelivered: Cell<usize>,
    /// Attempts to a replica that was down.
    refused: Cell<usize>,
    /// Attempts whose answer was lost.
    lost: Cell<usize>,
}

/// Posts route `route`'s webhooks one after another, as a sender does; every
/// [`REDELIVER_EVERY`]th is delivered again once accepted (a sender that retries after a
/// timeout, or "Redeliver" in GitHub's settings), to another replica: it must be a duplicate.
async fn send_route(route: usize, ports: &[u16], sending: &Sending) {
    for seq in 0..PER_ROUTE {
        let key = format!("chaos-r{route}-{seq}");
        let body = json!({ "message": format!("r{route} #{seq}") }).to_string();
        let (replica, answer) = post_until_answered(route, &key, &body, ports, sending).await;
        match answer {
            Answered::Queued => sending.accepted_by.borrow_mut()[replica] += 1,
            Answered::Duplicate { lost_before } => {
                assert!(
                    lost_before,
                    "{key}: a duplicate, though no attempt before was taken"
                );
                sending
                    .confirmed_duplicates
                    .set(sending.confirmed_duplicates.get() + 1);
            }
        }
        sending.accepted.set(sending.accepted.get() + 1);
        if seq % REDELIVER_EVERY == REDELIVER_EVERY - 1 {
            let (_, again) = post_until_answered(route, &key, &body, ports, sending).await;
            assert!(
                matches!(again, Answered::Duplicate { .. }),
                "{key}, accepted, was queued again when delivered again to another replica"
            );
            sending.redelivered.set(sending.redelivered.get() + 1);
        }
    }
}

/// How a webhook was answered at last.
enum Answered {
    /// 202: queued by this attempt.
    Queued,
    /// 200 duplicate: an attempt before this one was queued (or an earlier delivery).
    Duplicate {
        /// Whether an attempt before lost its answer.
        lost_before: bool,
    },
}

/// Posts a webhook to the next replica round robin, as a load balancer would, until one
/// answers 202 or 200 duplicate; a refused or lost attempt is posted again to the next replica
/// with the same delivery id (an attempt whose answer was lost may have been committed: dedup
/// keeps it to once). The replica that answered, and how.
async fn post_until_answered(
    route: usize,
    key: &str,
    body: &str,
    ports: &[u16],
    sending: &Sending,
) -> (usize, Answered) {
    let headers = [JSON, (DELIVERY_ID, key)];
    let mut lost_before = false;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(
            Instant::now() < deadline,
            "webhook {key} was never answered"
        );
        let replica = sending.next.get() % ports.len();
        sending.next.set(replica + 1);
        let url = format!("http://127.0.0.1:{}/hooks/r{route}", ports[replica]);
        match try_post(&url, &headers, body.to_owned()).await {
            Ok(answer) if answer.status == 202 => return (replica, Answered::Queued),
            Ok(answer) if answer.status == 200 && answer.json["duplicate"] == true => {
                return (replica, Answered::Duplicate { lost_before });
            }
            Ok(answer) if answer.status == 503 => {
                actix_web::rt::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(answer) => panic!("{key}: {} {}", answer.status, answer.text),
            Err(NoAnswer::Refused(_)) => sending.refused.set(sending.refused.get() + 1),
            Err(NoAnswer::Lost(_)) => {
                lost_before = true;
                sending.lost.set(sending.lost.get() + 1);
            }
        }
    }
}

/// Waits until `count` webhooks are accepted.
async fn accepted_at_least(sending: &Sending, count: usize) {
    while sending.accepted.get() < count {
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Leases a replica holds now: the routes it is sending.
async fn leases_of(client: &tokio_postgres::Client, pid: u32) -> i64 {
    let holder = format!("{pid}-%");
    count(
        client,
        "SELECT count(*) FROM route_leases \
         WHERE holder LIKE $1 AND expires_at > pushjet_bridge_now_ms()",
        &[holder.as_str()],
    )
    .await
}

/// A route's sequence numbers in the order they arrived, from texts `r<route> #<seq>`.
fn arrivals_by_route(texts: &[String]) -> Vec<Vec<usize>> {
    let mut routes = vec![Vec::new(); ROUTES];
    for text in texts {
        let (route, seq) = text
            .strip_prefix('r')
            .and_then(|rest| rest.split_once(" #"))
            .and_then(|(route, seq)| Some((route.parse::<usize>().ok()?, seq.parse().ok()?)))
            .unwrap_or_else(|| panic!("an unexpected message: {text:?}"));
        routes[route].push(seq);
    }
    routes
}

#[actix_web::test]
async fn replicas_killed_under_a_flapping_upstream_deliver_every_accepted_webhook_in_order() {
    let started = Instant::now();
    let (upstream, secrets, device) = pushjet_with_services(ROUTES).await;
    let flaky = Flaky::start();
    flaky.forward_to(&upstream.url("/pushjet/"));
    let database = TestPostgres::shared().create_database().await;
    let concurrency = CONCURRENCY.to_string();
    let vars = replica_vars(
        &flaky.url,
        &database,
        &secrets,
        &[
            ("PUSHJET_BRIDGE_DELIVERY_CONCURRENCY", &concurrency),
            ("PUSHJET_BRIDGE_SEND_TIMEOUT", "2s"),
            ("PUSHJET_BRIDGE_LEASE", "4s"),
            ("PUSHJET_BRIDGE_RETRY_MIN_DELAY", "50ms"),
            ("PUSHJET_BRIDGE_RETRY_MAX_DELAY", "250ms"),
        ],
    );
    let mut replicas: Vec<Replica> = (0..3).map(|_| Replica::start(&vars)).collect();
    for replica in &replicas {
        Process::wait_ready(replica.port).await;
    }
    let db = connect(&database).await;

    // Forwarding, 500s, forwarding, hangs past the send timeout (never forwarded), over again.
    flaky.flap_through(&[
        (Duration::from_millis(1200), Fault::Forward),
        (Duration::from_millis(300), Fault::ServerError),
        (Duration::from_millis(1200), Fault::Forward),
        (
            Duration::from_millis(300),
            Fault::Hang(Duration::from_secs(3)),
        ),
    ]);
    let ports: Vec<u16> = replicas.iter().map(|replica| replica.port).collect();
    let sending = Sending {
        accepted_by: RefCell::new(vec![0; replicas.len()]),
        ..Sending::default()
    };
    let senders = join_all((0..ROUTES).map(|route| send_route(route, &ports, &sending)));
    let chaos = async {
        let mut held = Vec::new();
        accepted_at_least(&sending, ROUTES * PER_ROUTE / 4).await;
        held.push(leases_of(&db, replicas[1].pid()).await);
        replicas[1].kill();
        actix_web::rt::time::sleep(Duration::from_millis(500)).await;
        replicas[1].restart();
        accepted_at_least(&sending, ROUTES * PER_ROUTE / 2).await;
        held.push(leases_of(&db, replicas[2].pid()).await);
        replicas[2].kill();
        held
    };
    let (_, held_at_kills) = futures_util::join!(senders, chaos);
    let posted_in = started.elapsed();
    flaky.flap_through(&[]);

    // Every accepted webhook was committed: wait until nothing is pending (the dead replica's
    // leases lapse first), then read what arrived.
    let mut texts: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let read = device.messages().await.expect("the device reads");
        texts.extend(read.into_iter().map(|message| message.message));
        let pending = count(&db, "SELECT count(*) FROM outbox_pending", &[]).await;
        if pending == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{pending} notification(s) still pending; {} arrived",
            texts.len()
        );
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    }
    actix_web::rt::time::sleep(Duration::from_millis(500)).await;
    let late = device.messages().await.expect("the device reads");
    texts.extend(late.into_iter().map(|message| message.message));

    let mut duplicates = 0;
    let mut problems = Vec::new();
    for (route, arrived) in arrivals_by_route(&texts).iter().enumerate() {
        let mut seen = HashSet::new();
        let firsts: Vec<usize> = arrived
            .iter()
            .copied()
            .filter(|seq| seen.insert(*seq))
            .collect();
        duplicates += arrived.len() - firsts.len();
        let missing: Vec<usize> = (0..PER_ROUTE).filter(|seq| !seen.contains(seq)).collect();
        if !missing.is_empty() {
            problems.push(format!("route r{route} never got {missing:?}"));
        }
        if let Some(pair) = firsts.windows(2).find(|pair| pair[0] > pair[1]) {
            problems.push(format!(
                "route r{route}: #{} arrived before #{}, out of the order they were accepted in",
                pair[0], pair[1]
            ));
        }
    }
    let dead = count(&db, "SELECT count(*) FROM outbox_dead_letters", &[]).await;
    eprintln!(
        "failover chaos: accepted {} (202 by replica {:?}; {} as duplicates after a lost answer), \
         {} delivered again answered duplicate; arrived {} ({duplicates} duplicates); attempts \
         refused by a dead replica {}, answers lost {}; leases held by the killed replicas \
         {held_at_kills:?}; upstream saw {} requests and forwarded {}; dead letters {dead}; \
         posted in {posted_in:?}, all in {:?}",
        sending.accepted.get(),
        sending.accepted_by.borrow(),
        sending.confirmed_duplicates.get(),
        sending.redelivered.get(),
        texts.len(),
        sending.refused.get(),
        sending.lost.get(),
        flaky.seen(),
        flaky.forwarded(),
        started.elapsed(),
    );
    assert!(problems.is_empty(), "{problems:#?}");
    assert_eq!(sending.accepted.get(), ROUTES * PER_ROUTE);
    assert_eq!(dead, 0, "no failure here is permanent");
    // Duplicates come only from the crash window: a send that reached Pushjet but whose outcome
    // was not committed when its replica was killed is sent again by the route's next holder. A
    // replica sends at most CONCURRENCY routes at once, one notification at a time each, and hands
    // a send's outcome to the outbox without waiting for its commit before it starts the next
    // send (worker.rs): per route, the send in flight and the one before it, whose commit
    // overlaps it.
    assert!(
        duplicates <= KILLS * CONCURRENCY * 2,
        "{duplicates} duplicates: more than {KILLS} kills x {CONCURRENCY} routes x 2 sends"
    );
}

/// The lease row of `route`: (holder, lease number, expiry in milliseconds since the epoch).
async fn lease_of(client: &tokio_postgres::Client, route: &str) -> Option<(String, i64, i64)> {
    client
        .query_opt(
            "SELECT holder, lease, expires_at FROM route_leases WHERE route = $1",
            &[&route],
        )
        .await
        .expect("the leases are readable")
        .map(|row| (row.get(0), row.get(1), row.get(2)))
}

#[actix_web::test]
async fn a_replica_killed_mid_send_keeps_its_route_until_its_lease_lapses_then_another_sends() {
    let (upstream, secrets, device) = pushjet_with_services(1).await;
    let flaky = Flaky::start();
    flaky.forward_to(&upstream.url("/pushjet/"));
    // The first send is held, unanswered, long past the test; the rest are forwarded.
    flaky.script(&[Fault::Hang(Duration::from_secs(600))]);
    let database = TestPostgres::shared().create_database().await;
    let lease = Duration::from_secs(5);
    let vars = replica_vars(
        &flaky.url,
        &database,
        &secrets,
        &[
            ("PUSHJET_BRIDGE_SEND_TIMEOUT", "4s"),
            ("PUSHJET_BRIDGE_LEASE", "5s"),
        ],
    );
    let mut replicas = [Replica::start(&vars), Replica::start(&vars)];
    for replica in &replicas {
        Process::wait_ready(replica.port).await;
    }
    let db = connect(&database).await;

    let answer = crate::common::post(
        &replicas[0].url("/hooks/r0"),
        &[JSON],
        json!({ "message": "once" }).to_string(),
    )
    .await;
    assert_eq!(answer.status, 202, "{}", answer.text);
    let deadline = Instant::now() + Duration::from_secs(20);
    while flaky.seen() == 0 {
        assert!(Instant::now() < deadline, "nobody sent the notification");
        actix_web::rt::time::sleep(Duration::from_millis(10)).await;
    }
    let (holder, number, _) = lease_of(&db, "r0").await.expect("a replica holds r0");
    let sender = replicas
        .iter()
        .position(|replica| holder.starts_with(&format!("{}-", replica.pid())))
        .unwrap_or_else(|| panic!("no replica is {holder}"));
    let killed_at = replicas[sender].kill();
    let (_, after_kill, expires_at) = lease_of(&db, "r0").await.expect("the lease is still there");
    assert_eq!(
        after_kill, number,
        "the replica was killed mid-send, before it gave its lease back"
    );

    let message = expect_messages(&device, 1)
        .await
        .pop()
        .expect("one message");
    let arrived = killed_at.elapsed().expect("the clock goes forward");
    assert_eq!(message.message, "once");
    assert_eq!(
        (flaky.seen(), flaky.forwarded()),
        (2, 1),
        "the dead replica's send, then the other's"
    );
    let taken_over = epoch_millis(flaky.arrivals()[1]);
    assert!(
        taken_over >= expires_at,
        "the other replica sent {} ms before the dead one's lease lapsed",
        expires_at - taken_over
    );
    // Behaviour, not speed: it is taken over once the lease lapses, not after some other timer.
    let margin = Duration::from_secs(15);
    assert!(
        arrived <= lease + margin,
        "the route was taken over {arrived:?} after the kill (lease {lease:?})"
    );
    drop(replicas);
}

#[actix_web::test]
async fn a_replica_cut_off_from_the_database_mid_send_sends_again_once_back_after_its_route_moved()
{
    let (upstream, secrets, device) = pushjet_with_services(1).await;
    let flaky = Flaky::start();
    flaky.forward_to(&upstream.url("/pushjet/"));
    // The first send fails, 2 s late: its outcome comes when the database is out of reach.
    flaky.script(&[Fault::Hang(Duration::from_secs(2))]);
    let database = TestPostgres::shared().create_database().await;
    let config: tokio_postgres::Config = database.parse().expect("a connection string");
    let port = config.get_ports()[0];
    let relay = Relay::start(port);
    let relayed = database.replace(&format!(":{port}/"), &format!(":{}/", relay.port));
    let extra = [
        ("PUSHJET_BRIDGE_SEND_TIMEOUT", "4s"),
        ("PUSHJET_BRIDGE_LEASE", "5s"),
        ("PUSHJET_BRIDGE_RETRY_MIN_DELAY", "100ms"),
        ("PUSHJET_BRIDGE_RETRY_MAX_DELAY", "200ms"),
    ];
    let cut_off = Replica::start(&replica_vars(&flaky.url, &relayed, &secrets, &extra));
    Process::wait_ready(cut_off.port).await;

    let first = json!({ "message": "first" }).to_string();
    let answer = crate::common::post(&cut_off.url("/hooks/r0"), &[JSON], first).await;
    assert_eq!(answer.status, 202, "{}", answer.text);
    let deadline = Instant::now() + Duration::from_secs(20);
    while flaky.seen() == 0 {
        assert!(Instant::now() < deadline, "the notification was not sent");
        actix_web::rt::time::sleep(Duration::from_millis(10)).await;
    }
    relay.cut();
    // Another replica takes the route over once the lease lapses, and sends it.
    let mut other = Replica::start(&replica_vars(&flaky.url, &database, &secrets, &extra));
    let sent = expect_messages(&device, 1).await;
    assert_eq!(sent[0].message, "first");

    // Back on the network, the first replica is alone: what it could not record is moot (the
    // route moved on), and it sends what it accepts.
    relay.mend();
    other.kill();
    Process::wait_ready(cut_off.port).await;
    let second = json!({ "message": "second" }).to_string();
    let answer = crate::common::post(&cut_off.url("/hooks/r0"), &[JSON], second).await;
    assert_eq!(answer.status, 202, "{}", answer.text);
    let sent = expect_messages(&device, 1).await;
    assert_eq!(sent[0].message, "second");
}

#[actix_web::test]
async fn the_binary_cut_off_from_its_database_answers_503_and_not_ready_then_recovers_by_itself() {
    let (upstream, secrets, device) = pushjet_with_services(1).await;
    let database = TestPostgres::shared().create_database().await;
    let config: tokio_postgres::Config = database.parse().expect("a connection string");
    let port = config.get_ports()[0];
    let relay = Relay::start(port);
    let relayed = database.replace(&format!(":{port}/"), &format!(":{}/", relay.port));
    let api = upstream.url("/pushjet/");
    let replica = Replica::start(&replica_vars(&api, &relayed, &secrets, &[]));
    Process::wait_ready(replica.port).await;
    let readyz = || async {
        let mut response = awc::Client::default()
            .get(replica.url("/readyz"))
            .send()
            .await
            .expect("/readyz answers");
        let body = response.body().await.expect("a body");
        (
            response.status().as_u16(),
            String::from_utf8_lossy(&body).into_owned(),
        )
    };

    relay.cut();
    let refused = json!({ "message": "while cut off" }).to_string();
    let answer = crate::common::post(&replica.url("/hooks/r0"), &[JSON], refused).await;
    assert_eq!(answer.status, 503, "{}", answer.text);
    assert!(
        answer.headers.contains_key("retry-after"),
        "{:?}",
        answer.headers
    );
    let (status, body) = readyz().await;
    assert_eq!(
        status, 503,
        "not ready while the database is out of reach: {body}"
    );
    assert!(
        body.contains("database"),
        "/readyz names the database: {body}"
    );

    relay.mend();
    let deadline = Instant::now() + Duration::from_secs(30);
    while readyz().await.0 != 200 {
        assert!(
            Instant::now() < deadline,
            "never ready again after the database came back"
        );
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    let accepted = json!({ "message": "back" }).to_string();
    let answer = crate::common::post(&replica.url("/hooks/r0"), &[JSON], accepted).await;
    assert_eq!(answer.status, 202, "{}", answer.text);
    let sent = expect_messages(&device, 1).await;
    assert_eq!(sent[0].message, "back", "the refused webhook was not kept");
    crate::common::assert_no_more_messages(&device).await;
}

/// Runs `pushjet-bridge dead-letters <words>` against `database`, in a data directory; its JSON.
async fn dead_letters(database: &str, data_dir: &Path, words: &[&str]) -> Value {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pushjet-bridge"));
    command
        .env_clear()
        .env("PUSHJET_BRIDGE_DATABASE_URL", database)
        .env("PUSHJET_BRIDGE_DATA_DIR", data_dir)
        .arg("dead-letters")
        .args(words)
        .stdin(Stdio::null());
    let output = actix_web::rt::task::spawn_blocking(move || command.output())
        .await
        .expect("the command ran")
        .expect("the binary starts");
    assert!(
        output.status.success(),
        "dead-letters {words:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON on standard output")
}

/// Lists the dead letters until there are `total`; the listing.
async fn wait_for_dead_letters(database: &str, data_dir: &Path, total: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let listed = dead_letters(database, data_dir, &["list"]).await;
        if listed["total"] == total {
            return listed;
        }
        assert!(Instant::now() < deadline, "never {total}: {listed:#}");
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_web::test]
async fn the_dead_letters_command_lists_retries_and_purges_them_in_the_database() {
    let (upstream, secrets, device) = pushjet_with_services(1).await;
    let flaky = Flaky::start();
    flaky.forward_to(&upstream.url("/pushjet/"));
    flaky.script(&[Fault::InvalidSecret]);
    let database = TestPostgres::shared().create_database().await;
    let replica = Replica::start(&replica_vars(&flaky.url, &database, &secrets, &[]));
    Process::wait_ready(replica.port).await;
    let elsewhere = tempfile::tempdir().expect("a data directory without an outbox");
    let hook = replica.url("/hooks/r0");
    let post =
        |text: &str| crate::common::post(&hook, &[JSON], json!({ "message": text }).to_string());

    let answer = post("buried, then retried").await;
    assert_eq!(answer.status, 202, "{}", answer.text);
    let listed = wait_for_dead_letters(&database, elsewhere.path(), 1).await;
    let letter = &listed["dead_letters"][0];
    assert_eq!(letter["route"], "r0", "{listed:#}");
    assert_eq!(
        letter["message"]["message"], "buried, then retried",
        "{listed:#}"
    );
    let reason = letter["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("secret"), "{reason}");
    let id = letter["id"].as_u64().expect("an id");

    let retried = dead_letters(&database, elsewhere.path(), &["retry", &id.to_string()]).await;
    assert_eq!(retried, json!({ "retried": id }));
    let sent = expect_messages(&device, 1).await;
    assert_eq!(sent[0].message, "buried, then retried");
    wait_for_dead_letters(&database, elsewhere.path(), 0).await;

    flaky.script(&[Fault::InvalidSecret]);
    let answer = post("buried, then purged").await;
    assert_eq!(answer.status, 202, "{}", answer.text);
    let listed = wait_for_dead_letters(&database, elsewhere.path(), 1).await;
    let id = listed["dead_letters"][0]["id"].as_u64().expect("an id");
    let purged = dead_letters(&database, elsewhere.path(), &["purge", &id.to_string()]).await;
    assert_eq!(purged, json!({ "purged": id }));
    let listed = dead_letters(&database, elsewhere.path(), &["list"]).await;
    assert_eq!(listed["total"], 0, "{listed:#}");
    expect_messages(&device, 0).await;
    assert_eq!(
        std::fs::read_dir(elsewhere.path())
            .expect("a directory")
            .count(),
        0,
        "the command kept nothing in the data directory"
    );
}

/// Starts a replica whose database is `url` and waits for it to exit; its standard error.
async fn start_without_database(url: &str) -> String {
    let dir = tempfile::tempdir().expect("a data directory");
    let log = dir.path().join("log");
    let file = std::fs::File::create(&log).expect("a log file");
    let mut process = Process::start_logging(
        dir.path(),
        free_port(),
        &[
            ("PUSHJET_BRIDGE_DATABASE_URL", url),
            ("PUSHJET_BRIDGE_ROUTES", "r0"),
            (
                "PUSHJET_BRIDGE_ROUTE_R0_SECRET",
                "0123456789abcdef0123456789abcdef",
            ),
        ],
        file,
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = process.0.try_wait().expect("the process is there") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "still running without its database"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    };
    let log = std::fs::read_to_string(&log).expect("the log");
    assert!(!status.success(), "{status:?}: {log}");
    log
}

#[actix_web::test]
async fn a_replica_that_cannot_reach_the_database_at_start_exits_with_the_reason() {
    let port = free_port();
    let refused = start_without_database(&format!(
        "postgres://bridge:pa55word@127.0.0.1:{port}/outbox?sslmode=disable"
    ))
    .await;
    assert!(
        refused.contains(&format!("postgres://bridge@127.0.0.1:{port}/outbox")),
        "{refused}"
    );
    assert!(refused.contains("Connection refused"), "{refused}");

    // A server that takes the connection and never answers: given up after the connect timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let port = silent.local_addr().expect("its address").port();
    let timed_out = start_without_database(&format!(
        "postgres://bridge:pa55word@127.0.0.1:{port}/outbox?sslmode=disable"
    ))
    .await;
    assert!(
        timed_out.contains("postgres://bridge@127.0.0.1"),
        "{timed_out}"
    );
    assert!(timed_out.to_lowercase().contains("time"), "{timed_out}");
    for log in [&refused, &timed_out] {
        assert!(!log.contains("pa55word"), "{log}");
    }
}
