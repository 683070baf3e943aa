use super::*;
use crate::pushjet::wire::ServiceView;
use crate::pushjet::{Importance, SecretKey};

const DEVICE: &str = "01234567-89ab-cdef-0123-456789abcdef";
const OTHER: &str = "fedcba98-7654-3210-fedc-ba9876543210";

fn device(raw: &str) -> DeviceUuid {
    DeviceUuid::parse(raw).unwrap()
}

fn hub_with(settings: StreamSettings) -> Arc<Hub> {
    Hub::new(settings, StreamMetrics::default())
}

fn hub() -> Arc<Hub> {
    hub_with(StreamSettings::default())
}

fn stored(id: u64, devices: &[&str], text: &str, timestamp: i64) -> StoredMessage {
    StoredMessage {
        id,
        stream_id: crate::pushjet_server::new_stream_id(),
        devices: devices.iter().map(|raw| device(raw)).collect(),
        message: MessageView {
            level: Importance::DEFAULT,
            link: String::new(),
            message: text.to_owned(),
            service: ServiceView {
                created: 0,
                icon: String::new(),
                name: "svc".to_owned(),
                public: SecretKey::generate().unwrap().public_key(),
                secret: None,
            },
            timestamp,
            title: String::new(),
        },
    }
}

fn texts(deliveries: &[Delivery]) -> Vec<String> {
    deliveries
        .iter()
        .map(|delivery| match delivery {
            Delivery::Message { message, .. } => message.view.message.clone(),
            Delivery::Subscription(frame) => frame.to_string(),
        })
        .collect()
}

fn drain(stream: &mut Stream) -> Vec<Delivery> {
    let mut received = Vec::new();
    while let Ok(delivery) = stream.receiver.try_recv() {
        received.push(delivery);
    }
    received
}

#[test]
fn a_message_reaches_every_stream_of_its_devices_and_no_other() {
    let hub = hub();
    let (_, mut mine) = hub
        .open(&[device(DEVICE)], StreamKind::Json, &Since::Nothing)
        .unwrap();
    let (_, mut again) = hub
        .open(&[device(DEVICE)], StreamKind::Connector, &Since::Nothing)
        .unwrap();
    let (_, mut other) = hub
        .open(&[device(OTHER)], StreamKind::Json, &Since::Nothing)
        .unwrap();
    hub.publish_message(stored(1, &[DEVICE], "one", now()));
    assert_eq!(texts(&drain(&mut mine)), ["one"]);
    assert_eq!(texts(&drain(&mut again)), ["one"]);
    assert!(drain(&mut other).is_empty());
    assert_eq!(hub.open_streams(), 3);
    drop((mine, again, other));
    assert_eq!(hub.open_streams(), 0);
}

#[test]
fn since_selects_from_the_cache_by_id_time_latest_and_all() {
    let hub = hub();
    let now = now();
    for (id, text) in [(1, "a"), (2, "b"), (3, "c")] {
        hub.publish_message(stored(
            id,
            &[DEVICE],
            text,
            now - 100 + i64::try_from(id).unwrap(),
        ));
    }
    hub.publish_message(stored(4, &[OTHER], "other", now));
    let devices = [device(DEVICE)];
    assert_eq!(texts(&hub.cached(&devices, &Since::All)), ["a", "b", "c"]);
    assert_eq!(texts(&hub.cached(&devices, &Since::Latest)), ["c"]);
    assert!(hub.cached(&devices, &Since::Nothing).is_empty());
    assert_eq!(
        texts(&hub.cached(&devices, &Since::Time(now - 98))),
        ["b", "c"]
    );
    let Delivery::Message { message: first, .. } = &hub.cached(&devices, &Since::All)[0] else {
        panic!("a message");
    };
    let after_first = Since::Id(first.id.clone());
    assert_eq!(texts(&hub.cached(&devices, &after_first)), ["b", "c"]);
    let (cached, _stream) = hub.open(&devices, StreamKind::Sse, &after_first).unwrap();
    assert_eq!(texts(&cached), ["b", "c"]);
    assert_eq!(
        texts(&hub.cached(&devices, &Since::Id("unknownid123".to_owned()))),
        ["a", "b", "c"],
        "an id the cache does not hold gives everything, so nothing is missed"
    );
}

#[test]
fn the_cache_forgets_what_is_older_than_its_window() {
    let hub = hub_with(StreamSettings {
        cache_for: Duration::from_secs(60),
        ..StreamSettings::default()
    });
    hub.publish_message(stored(1, &[DEVICE], "old", now() - 120));
    hub.publish_message(stored(2, &[DEVICE], "new", now()));
    assert_eq!(texts(&hub.cached(&[device(DEVICE)], &Since::All)), ["new"]);
    let none = hub_with(StreamSettings {
        cache_for: Duration::ZERO,
        ..StreamSettings::default()
    });
    none.publish_message(stored(1, &[DEVICE], "x", now()));
    assert!(none.cached(&[device(DEVICE)], &Since::All).is_empty());
}

#[test]
fn a_stream_whose_buffer_is_full_is_dropped_and_the_others_carry_on() {
    let hub = hub_with(StreamSettings {
        buffer: 2,
        ..StreamSettings::default()
    });
    let (_, mut slow) = hub
        .open(&[device(DEVICE)], StreamKind::Ws, &Since::Nothing)
        .unwrap();
    let (_, mut fast) = hub
        .open(&[device(DEVICE)], StreamKind::Ws, &Since::Nothing)
        .unwrap();
    for id in 1..=5 {
        hub.publish_message(stored(id, &[DEVICE], &id.to_string(), now()));
        drain(&mut fast);
    }
    assert_eq!(texts(&drain(&mut slow)), ["1", "2"]);
    assert!(
        slow.receiver.is_closed(),
        "the hub let go of the slow stream"
    );
    assert!(!hub.is_closing());
    assert!(!fast.receiver.is_closed());
    assert_eq!(hub.open_streams(), 1);
}

#[test]
fn limits_refuse_streams_beyond_the_total_and_the_per_device_count() {
    let hub = hub_with(StreamSettings {
        max_streams: 3,
        max_streams_per_device: 2,
        ..StreamSettings::default()
    });
    let first = hub
        .open(&[device(DEVICE)], StreamKind::Json, &Since::Nothing)
        .unwrap();
    let _second = hub
        .open(&[device(DEVICE)], StreamKind::Json, &Since::Nothing)
        .unwrap();
    assert_eq!(
        hub.open(&[device(DEVICE)], StreamKind::Json, &Since::Nothing)
            .unwrap_err(),
        Refused::TooManyForDevice(2)
    );
    let _third = hub
        .open(&[device(OTHER)], StreamKind::Json, &Since::Nothing)
        .unwrap();
    assert_eq!(
        hub.open(&[device(OTHER)], StreamKind::Json, &Since::Nothing)
            .unwrap_err(),
        Refused::TooManyStreams(3)
    );
    drop(first);
    assert!(
        hub.open(&[device(OTHER)], StreamKind::Json, &Since::Nothing)
            .is_ok()
    );
}

#[test]
fn subscription_changes_go_to_connector_streams_only() {
    let hub = hub();
    let (_, mut connector) = hub
        .open(&[device(DEVICE)], StreamKind::Connector, &Since::Nothing)
        .unwrap();
    let (_, mut ntfy) = hub
        .open(&[device(DEVICE)], StreamKind::Json, &Since::Nothing)
        .unwrap();
    let view = stored(1, &[DEVICE], "x", 5).message.service;
    hub.publish_subscription(SubscriptionView {
        service: view,
        timestamp: 5,
        timestamp_checked: 6,
        uuid: device(DEVICE),
    });
    let received = texts(&drain(&mut connector));
    assert_eq!(received.len(), 1);
    assert!(
        received[0].starts_with(
            r#"{"subscription": {"service": {"created": 0, "icon": "", "name": "svc", "public": ""#
        ),
        "{received:?}"
    );
    assert!(
        received[0].ends_with(r#""}, "timestamp": 5, "timestamp_checked": 6, "uuid": "01234567-89ab-cdef-0123-456789abcdef"}}"#),
        "{received:?}"
    );
    assert!(drain(&mut ntfy).is_empty());
}

#[test]
fn closing_ends_every_stream_and_refuses_new_ones() {
    let hub = hub();
    let (_, mut stream) = hub
        .open(&[device(DEVICE)], StreamKind::Raw, &Since::Nothing)
        .unwrap();
    hub.close_all();
    assert!(stream.receiver.try_recv().is_err());
    assert!(stream.receiver.is_closed());
    assert!(hub.is_closing());
    assert_eq!(
        hub.open(&[device(DEVICE)], StreamKind::Raw, &Since::Nothing)
            .unwrap_err(),
        Refused::ShuttingDown
    );
}

#[test]
fn one_stream_on_several_devices_gets_each_message_once_in_order() {
    let hub = hub();
    hub.publish_message(stored(1, &[OTHER], "cached other", now()));
    hub.publish_message(stored(2, &[DEVICE], "cached mine", now()));
    let (cached, mut stream) = hub
        .open(
            &[device(DEVICE), device(OTHER)],
            StreamKind::Json,
            &Since::All,
        )
        .unwrap();
    assert_eq!(texts(&cached), ["cached other", "cached mine"]);
    hub.publish_message(stored(3, &[DEVICE, OTHER], "both", now()));
    let received = drain(&mut stream);
    assert_eq!(texts(&received), ["both"]);
    assert_eq!(hub.open_streams(), 2);
}

#[test]
fn a_stream_counts_once_per_device_against_the_stream_limit() {
    let hub = hub_with(StreamSettings {
        max_streams: 3,
        ..StreamSettings::default()
    });
    let (_, two) = hub
        .open(
            &[device(DEVICE), device(OTHER)],
            StreamKind::Json,
            &Since::Nothing,
        )
        .unwrap();
    assert_eq!(hub.open_streams(), 2);
    assert_eq!(
        hub.open(
            &[device(DEVICE), device(OTHER)],
            StreamKind::Ws,
            &Since::Nothing
        )
        .unwrap_err(),
        Refused::TooManyStreams(3)
    );
    let _one = hub
        .open(&[device(DEVICE)], StreamKind::Json, &Since::Nothing)
        .unwrap();
    drop(two);
    assert_eq!(hub.open_streams(), 1);
}

#[test]
fn the_cache_stays_within_its_byte_budget() {
    let hub = hub_with(StreamSettings {
        cache_max_bytes: 1024 * 1024,
        ..StreamSettings::default()
    });
    let large = "z".repeat(100_000);
    for id in 1..=50 {
        hub.publish_message(stored(id, &[DEVICE, OTHER], &large, now()));
    }
    assert!(hub.cache_bytes() <= 1024 * 1024, "{}", hub.cache_bytes());
    let kept = hub.cached(&[device(DEVICE)], &Since::All);
    assert!((4..=5).contains(&kept.len()), "{}", kept.len());
}

#[test]
fn a_message_the_hub_already_has_is_not_published_again() {
    let hub = hub();
    let (_, mut stream) = hub
        .open(&[device(DEVICE)], StreamKind::Json, &Since::Nothing)
        .unwrap();
    let first = stored(2, &[DEVICE], "first", now());
    hub.publish_message(first.clone());
    hub.publish_message(first);
    hub.publish_message(stored(1, &[DEVICE], "older", now()));
    hub.publish_message(stored(3, &[DEVICE], "newer", now()));
    let texts: Vec<String> = hub
        .cached(&[device(DEVICE)], &Since::All)
        .into_iter()
        .filter_map(|delivery| match delivery {
            Delivery::Message { message, .. } => Some(message.view.message.clone()),
            Delivery::Subscription(_) => None,
        })
        .collect();
    assert_eq!(texts, ["first", "newer"]);
    let mut received = 0;
    while stream.receiver.try_recv().is_ok() {
        received += 1;
    }
    assert_eq!(received, 2);
}
