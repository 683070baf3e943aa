//! The real binary on a PostgreSQL that hangs (SIGSTOP to every process of the server: its
//! connections stay open and nothing answers) rather than going down: webhooks are answered 503
//! with `Retry-After` within `PUSHJET_BRIDGE_DATABASE_TIMEOUT`, never 202 after a long wait,
//! `/readyz` says the database does not answer, `/healthz` still answers, and once the server
//! goes on (SIGCONT) the replica is ready again by itself and delivers every webhook accepted,
//! once, the refused ones included when their senders post them again.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::json;

use crate::common::postgres::TestPostgres;
use crate::common::{expect_messages, pushjet_with_services, try_post};
use crate::failover::{DELIVERY_ID, JSON, Replica, replica_vars};
use crate::support::Process;

/// The bound the replica runs with: short, so that the test is; the default is 5 s.
const DATABASE_TIMEOUT: Duration = Duration::from_secs(2);
/// What a loaded machine may add to the bound before an answer counts as late. Without the
/// bound, webhooks wait as long as the server hangs (here until the test gives up on them).
const SLACK: Duration = Duration::from_secs(6);
/// Webhooks posted at once while the server hangs.
const DURING: usize = 10;

/// Posts webhook `key` to route `r0`; its status and whether it had `Retry-After`, and how long
/// the answer took.
async fn post(replica: &Replica, key: &str) -> (u16, bool, Duration) {
    let started = Instant::now();
    let body = json!({ "message": key }).to_string();
    let answer = try_post(&replica.url("/hooks/r0"), &[JSON, (DELIVERY_ID, key)], body)
        .await
        .unwrap_or_else(|error| panic!("{key} got no answer: {error:?}"));
    let retry_after = answer.headers.contains_key("retry-after");
    (answer.status.as_u16(), retry_after, started.elapsed())
}

/// `/readyz`'s status and body.
async fn readyz(replica: &Replica) -> (u16, String) {
    let mut response = awc::Client::default()
        .get(replica.url("/readyz"))
        .timeout(Duration::from_secs(15))
        .send()
        .await
        .expect("/readyz answers");
    let body = response.body().await.expect("a body");
    (
        response.status().as_u16(),
        String::from_utf8_lossy(&body).into_owned(),
    )
}

#[actix_web::test]
async fn a_hung_database_gets_webhooks_503_within_the_timeout_and_every_accepted_one_delivered() {
    let (upstream, secrets, device) = pushjet_with_services(1).await;
    let server = TestPostgres::start();
    let database = server.create_database().await;
    let timeout = humantime::format_duration(DATABASE_TIMEOUT).to_string();
    let vars = replica_vars(
        &upstream.url("/pushjet/"),
        &database,
        &secrets,
        &[("PUSHJET_BRIDGE_DATABASE_TIMEOUT", &timeout)],
    );
    let replica = Replica::start(&vars);
    Process::wait_ready(replica.port).await;
    for n in 0..3 {
        let (status, _, _) = post(&replica, &format!("before-{n}")).await;
        assert_eq!(status, 202);
    }

    server.pause();
    let keys: Vec<String> = (0..DURING).map(|n| format!("during-{n}")).collect();
    let answers = join_all(keys.iter().map(|key| post(&replica, key))).await;
    let slowest = answers.iter().map(|(_, _, took)| *took).max();
    eprintln!("hung database: {DURING} webhooks at once answered 503 within {slowest:?}");
    for (key, (status, retry_after, took)) in keys.iter().zip(&answers) {
        assert_eq!(*status, 503, "{key} while the database hangs");
        assert!(retry_after, "{key}: 503 with Retry-After");
        assert!(
            *took < DATABASE_TIMEOUT + SLACK,
            "{key} answered after {took:?}"
        );
    }
    let healthz = awc::Client::default()
        .get(replica.url("/healthz"))
        .send()
        .await
        .expect("/healthz answers while the database hangs");
    assert_eq!(healthz.status(), 200);
    let started = Instant::now();
    let (status, body) = loop {
        let (status, body) = readyz(&replica).await;
        if status == 503 || started.elapsed() > DATABASE_TIMEOUT + SLACK {
            break (status, body);
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!(
        "hung database: /readyz 503 {:?} after the webhooks' answers",
        started.elapsed()
    );
    assert_eq!(status, 503, "not ready while the database hangs: {body}");
    assert!(
        body.contains("no answer within"),
        "/readyz names it: {body}"
    );

    server.resume();
    let deadline = Instant::now() + Duration::from_secs(30);
    while readyz(&replica).await.0 != 200 {
        assert!(Instant::now() < deadline, "never ready again after SIGCONT");
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    // The senders retry what was refused, with the same delivery ids: a refused webhook whose
    // enqueue committed when the server went on is a duplicate, kept once.
    for key in &keys {
        let (status, _, _) = post(&replica, key).await;
        assert!(
            status == 202 || status == 200,
            "{key} after SIGCONT: {status}"
        );
    }
    let delivered: BTreeSet<String> = expect_messages(&device, 3 + DURING)
        .await
        .into_iter()
        .map(|message| message.message)
        .collect();
    let expected: BTreeSet<String> = (0..3)
        .map(|n| format!("before-{n}"))
        .chain(keys.iter().cloned())
        .collect();
    assert_eq!(delivered, expected, "each accepted webhook delivered once");
}
