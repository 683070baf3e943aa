//! The CPU work of one webhook, on the shared fixtures: decoding a payload, rendering its
//! template (the target: a median under 50 µs for any built-in template), the whole pipeline
//! (`Bridge::prepare`: authentication, decoding, filtering, rendering), and signature
//! verification on a 25 KB body.
//!
//! ```sh
//! cargo bench --features internals --bench pipeline                # everything
//! cargo bench --features internals --bench pipeline -- render/     # one group
//! ```

use std::hint::black_box;
use std::time::Duration;

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pushjet_bridge::notification::{Assembled, assemble};
use pushjet_bridge::pipeline::{Bridge, Inbound};
use pushjet_bridge::pushjet::{Importance, SecretKey};
use pushjet_bridge::render::{Renderer, TemplateContext};
use pushjet_bridge::routes::{DeliveryMode, Route, RouteName, Routes};
use pushjet_bridge::sources::{self, Decoded, SourceKind, SourceOptions, SourceSetting};
use pushjet_bridge::verify::InboundAuth;

/// The fixtures folder, `tests/fixtures` (see its `SOURCES.md`).
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// The message limit the service uses by default.
const MAX_MESSAGE_BYTES: usize = 4096;

/// The webhook secret of the signature benchmarks.
const WEBHOOK_SECRET: &str = "It's a Secret to Everybody";

/// One payload of a built-in sender, with the headers it arrives with.
struct Case {
    /// The benchmark's name.
    name: &'static str,
    /// The sender.
    source: SourceKind,
    /// The fixture, relative to the fixtures folder.
    fixture: &'static str,
    /// The sender's event header, if it has one.
    event_header: Option<(&'static str, &'static str)>,
}

/// The built-in senders on their fixtures: the four the issue names first, then one per
/// remaining sender.
const CASES: [Case; 8] = [
    Case {
        name: "alertmanager_multi",
        source: SourceKind::Alertmanager,
        fixture: "alertmanager/captured-firing-multi-severity.json",
        event_header: None,
    },
    Case {
        name: "github_push",
        source: SourceKind::Github,
        fixture: "github/push.json",
        event_header: Some(("X-GitHub-Event", "push")),
    },
    Case {
        name: "github_pull_request_opened",
        source: SourceKind::Github,
        fixture: "github/pull_request.opened.json",
        event_header: Some(("X-GitHub-Event", "pull_request")),
    },
    Case {
        name: "github_workflow_run_completed",
        source: SourceKind::Github,
        fixture: "github/workflow_run.completed.json",
        event_header: Some(("X-GitHub-Event", "workflow_run")),
    },
    Case {
        name: "gitea_push",
        source: SourceKind::Gitea,
        fixture: "gitea/push.json",
        event_header: Some(("X-Gitea-Event", "push")),
    },
    Case {
        name: "gitlab_push",
        source: SourceKind::Gitlab,
        fixture: "gitlab/push.json",
        event_header: Some(("X-Gitlab-Event", "Push Hook")),
    },
    Case {
        name: "grafana_firing",
        source: SourceKind::Grafana,
        fixture: "grafana/firing.grafana-alerting-default-payload.json",
        event_header: None,
    },
    Case {
        name: "generic_message",
        source: SourceKind::Generic,
        fixture: "generic/message.json",
        event_header: None,
    },
];

impl Case {
    fn body(&self) -> Vec<u8> {
        read_fixture(self.fixture)
    }

    fn headers(&self) -> HeaderMap {
        let mut pairs = vec![("Content-Type", "application/json")];
        pairs.extend(self.event_header);
        headers(&pairs)
    }

    fn options(&self) -> SourceOptions {
        SourceOptions {
            setting: SourceSetting::Fixed(self.source),
            ..SourceOptions::new("bench")
        }
    }

    fn decode(&self) -> Decoded {
        sources::decode(&self.headers(), "", &self.body(), &self.options())
            .unwrap_or_else(|error| panic!("{}: {error}", self.fixture))
    }
}

fn read_fixture(name: &str) -> Vec<u8> {
    let path = format!("{FIXTURES}/{name}");
    std::fs::read(&path).unwrap_or_else(|error| panic!("{path}: {error}"))
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.insert(
            HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            HeaderValue::from_str(value).expect("header value"),
        );
    }
    map
}

fn renderer() -> Renderer {
    Renderer::load(None).expect("the built-in templates load")
}

/// The template each context of a decoded payload renders with, as the pipeline picks it.
fn templates<'a>(renderer: &'a Renderer, decoded: &Decoded) -> Vec<&'a str> {
    decoded
        .contexts
        .iter()
        .map(|context| {
            let (event, action) = (context.event.as_str(), context.action.as_deref());
            renderer
                .lookup(decoded.source.as_str(), event, action, None)
                .expect("a built-in template for every fixture")
        })
        .collect()
}

/// `sources::decode`: body bytes to template contexts (JSON parsed once).
fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    for case in &CASES {
        let (headers, body, options) = (case.headers(), case.body(), case.options());
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(case.name, |b| {
            b.iter(|| sources::decode(black_box(&headers), "", black_box(&body), &options))
        });
    }
    group.finish();
}

/// `Renderer::render_context` + `notification::assemble` of every notification of a decoded
/// payload, as the pipeline renders them (the context is handed over, not copied): the template
/// work alone.
fn render(c: &mut Criterion) {
    let renderer = renderer();
    let mut group = c.benchmark_group("render");
    for case in &CASES {
        let decoded = case.decode();
        let names = templates(&renderer, &decoded);
        let contexts: Vec<TemplateContext> = decoded
            .contexts
            .iter()
            .map(|context| TemplateContext::new(context.tree.clone()))
            .collect();
        for (context, name) in contexts.iter().zip(&names) {
            let fields = renderer
                .render_context(name, context)
                .expect("the fixture renders");
            let assembled = assemble(&fields, Importance::DEFAULT, MAX_MESSAGE_BYTES);
            assert!(
                matches!(assembled, Assembled::Send { .. }),
                "{} renders to a notification",
                case.name
            );
        }
        group.bench_function(case.name, |b| {
            b.iter(|| {
                for (context, name) in contexts.iter().zip(&names) {
                    let fields = renderer
                        .render_context(name, black_box(context))
                        .expect("the fixture renders");
                    black_box(assemble(&fields, Importance::DEFAULT, MAX_MESSAGE_BYTES));
                }
            })
        });
    }
    group.finish();
}

/// A route for `Bridge::prepare`: the case's sender, the given authentication.
fn route(case: &Case, auth: InboundAuth) -> Route {
    Route {
        name: RouteName::parse("bench").expect("route name"),
        secret: SecretKey::parse("0123456789abcdef0123456789abcdef").expect("secret key"),
        readers: pushjet_bridge::verify::ReaderAuth::of(&auth),
        auth,
        source: case.options(),
        template: None,
        events: None,
        delivery: DeliveryMode::Queued,
        noise: pushjet_bridge::noise::NoisePolicy::default(),
    }
}

/// `Bridge::prepare`: one whole webhook through the line (no authentication configured).
fn prepare(c: &mut Criterion) {
    let mut group = c.benchmark_group("prepare");
    for case in &CASES {
        let route = route(case, InboundAuth::default());
        let bridge = Bridge {
            routes: Routes::new([route.clone()]),
            renderer: renderer(),
            max_body_bytes: 5 * 1024 * 1024,
            max_message_bytes: MAX_MESSAGE_BYTES,
        };
        let (headers, body) = (case.headers(), case.body());
        let inbound = Inbound {
            headers: &headers,
            query: "",
            body: &body,
        };
        let prepared = bridge
            .prepare(&route, inbound)
            .expect("the fixture prepares");
        assert!(prepared.to_send().count() > 0, "{} sends", case.name);
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(case.name, |b| {
            b.iter(|| bridge.prepare(&route, black_box(inbound)))
        });
    }
    group.finish();
}

/// A body of exactly 25 KiB: the start of a real pull_request delivery.
fn body_25k() -> Vec<u8> {
    let mut body = read_fixture("github/pull_request.opened.json");
    body.truncate(25 * 1024);
    assert_eq!(body.len(), 25 * 1024, "the fixture is at least 25 KiB");
    body
}

/// The hex HMAC-SHA256 of `body` under `secret`, computed here independently of the bridge.
fn github_signature(secret: &str, body: &[u8]) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// `InboundAuth::verify` on a 25 KiB body: a GitHub signature (one secret, and the second of two
/// during a rotation, the worst case), and a bearer token for comparison.
fn verify(c: &mut Criterion) {
    let body = body_25k();
    let signed = headers(&[
        ("Content-Type", "application/json"),
        (
            "X-Hub-Signature-256",
            &github_signature(WEBHOOK_SECRET, &body),
        ),
    ]);
    let one_secret = InboundAuth::new(Some(WEBHOOK_SECRET), None, None).expect("auth");
    let rotating =
        InboundAuth::new(Some(&format!("old-secret,{WEBHOOK_SECRET}")), None, None).expect("auth");
    let token =
        InboundAuth::new(None, Some("a-bearer-token-for-alertmanager"), None).expect("auth");
    let bearer = headers(&[("Authorization", "Bearer a-bearer-token-for-alertmanager")]);
    for (auth, headers) in [
        (&one_secret, &signed),
        (&rotating, &signed),
        (&token, &bearer),
    ] {
        auth.verify(headers, "", &body)
            .expect("the request verifies");
    }

    let mut group = c.benchmark_group("verify");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("github_signature_25k", |b| {
        b.iter(|| one_secret.verify(black_box(&signed), "", black_box(&body)))
    });
    group.bench_function("github_signature_25k_second_of_two_secrets", |b| {
        b.iter(|| rotating.verify(black_box(&signed), "", black_box(&body)))
    });
    group.bench_function("bearer_token_25k", |b| {
        b.iter(|| token.verify(black_box(&bearer), "", black_box(&body)))
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = decode, render, prepare, verify
}
criterion_main!(benches);
