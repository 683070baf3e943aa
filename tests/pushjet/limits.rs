//! The embedded API's limits, which the real server does not have: writes per client address,
//! the create token, unread messages kept per service and device, their age, the size of one
//! `GET /message` answer, and the database's size.

use std::time::Duration;

use pushjet_bridge::pushjet::{DeviceUuid, Error, MessageText, NewMessage};

use crate::common::spawn_app_with;

fn device() -> DeviceUuid {
    DeviceUuid::parse(&uuid::Uuid::new_v4().to_string()).unwrap()
}

fn message(text: &str) -> NewMessage {
    NewMessage::text(MessageText::new(text).unwrap())
}

#[actix_web::test]
async fn writes_beyond_the_rate_get_429_with_retry_after_and_reads_still_work() {
    let app = spawn_app_with(&[
        ("PUSHJET_BRIDGE_PUSHJET_WRITES_PER_MINUTE", "3"),
        ("PUSHJET_BRIDGE_PUSHJET_LIMIT_LOOPBACK", "true"),
    ])
    .await;
    let api = app.pushjet();
    let mut created = Vec::new();
    for n in 0..3 {
        created.push(api.create_service(&format!("s{n}"), None).await.unwrap());
    }
    match api.create_service("one too many", None).await {
        Err(Error::RateLimited {
            retry_after: Some(wait),
        }) => assert!(wait >= Duration::from_secs(1), "{wait:?}"),
        other => panic!("expected 429 with Retry-After, got {other:?}"),
    }
    api.service_by_public_key(created[0].public_key())
        .await
        .expect("reads are not limited");
}

#[actix_web::test]
async fn creating_a_service_needs_the_create_token_when_one_is_set() {
    let token = "household-create-token";
    let app = spawn_app_with(&[("PUSHJET_BRIDGE_PUSHJET_CREATE_TOKEN", token)]).await;
    match app.pushjet().create_service("anonymous", None).await {
        Err(Error::Invalid { status: 401, .. }) => {}
        other => panic!("expected 401, got {other:?}"),
    }
    let answer = crate::common::post(
        &app.url("/pushjet/service"),
        &[
            ("Authorization", &format!("Bearer {token}")),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        "name=with%20the%20token",
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert!(
        answer.json["service"]["secret"].is_string(),
        "{}",
        answer.text
    );
}

#[actix_web::test]
async fn a_device_keeps_only_the_newest_unread_messages_and_one_answer_is_bounded() {
    let app = spawn_app_with(&[
        ("PUSHJET_BRIDGE_PUSHJET_MAX_UNREAD", "3"),
        ("PUSHJET_BRIDGE_PUSHJET_MAX_FETCH_BYTES", "2500"),
    ])
    .await;
    let api = app.pushjet();
    let service = api.create_service("busy", None).await.unwrap();
    let device = api.device(device());
    device.subscribe(&service).await.unwrap();
    for n in 1..=5 {
        service.send(&message(&format!("short {n}"))).await.unwrap();
    }
    let texts = |messages: Vec<pushjet_bridge::pushjet::Message>| {
        messages.into_iter().map(|m| m.message).collect::<Vec<_>>()
    };
    assert_eq!(
        texts(device.messages().await.unwrap()),
        ["short 3", "short 4", "short 5"],
        "the oldest are dropped"
    );

    for n in 1..=3 {
        service
            .send(&message(&format!("{n}{}", "x".repeat(999))))
            .await
            .unwrap();
    }
    let first = texts(device.messages().await.unwrap());
    let second = texts(device.messages().await.unwrap());
    assert_eq!(
        (first.len(), second.len()),
        (2, 1),
        "2,500 bytes per answer"
    );
    assert!(first[0].starts_with('1') && first[1].starts_with('2') && second[0].starts_with('3'));
    assert!(device.messages().await.unwrap().is_empty());
}

#[actix_web::test]
async fn messages_older_than_the_age_limit_are_dropped() {
    let app = spawn_app_with(&[("PUSHJET_BRIDGE_PUSHJET_MESSAGE_MAX_AGE", "1s")]).await;
    let api = app.pushjet();
    let service = api.create_service("old news", None).await.unwrap();
    let device = api.device(device());
    device.subscribe(&service).await.unwrap();
    service.send(&message("stale")).await.unwrap();
    actix_web::rt::time::sleep(Duration::from_millis(2500)).await;
    service.send(&message("fresh")).await.unwrap();
    let texts: Vec<String> = device
        .messages()
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.message)
        .collect();
    assert_eq!(texts, ["fresh"]);
}

#[actix_web::test]
async fn past_the_disk_ceiling_writes_get_507_and_reads_still_work() {
    let app = spawn_app_with(&[("PUSHJET_BRIDGE_PUSHJET_MAX_DISK_BYTES", "2097152")]).await;
    let api = app.pushjet();
    let service = api.create_service("filler", None).await.unwrap();
    let device = api.device(device());
    device.subscribe(&service).await.unwrap();
    let big = "y".repeat(60_000);
    let mut refused = None;
    for sent in 0..200 {
        match service.send(&message(&big)).await {
            Ok(()) => {}
            Err(error) => {
                refused = Some((sent, error));
                break;
            }
        }
    }
    let (sent, error) = refused.expect("the ceiling is reached within 12 MB");
    assert!(
        matches!(error, Error::Server { status: 507, .. }),
        "after {sent} sends: {error:?}"
    );
    assert!(
        (5..=60).contains(&sent),
        "{sent} messages of 60 kB fitted under a ceiling of 2 MiB"
    );
    match api.create_service("another", None).await {
        Err(Error::Server { status: 507, .. }) => {}
        other => panic!("expected 507, got {other:?}"),
    }
    let mut read = 0;
    loop {
        let answer = device.messages().await.expect("reads still work");
        if answer.is_empty() {
            break;
        }
        read += answer.len();
    }
    assert_eq!(
        read, sent,
        "every stored message is read, one bounded answer at a time"
    );
}
