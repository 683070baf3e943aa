//! `/metrics` under requests an attacker makes up: the request metrics label only from a closed
//! set (known methods, else `other`; matched route patterns, else `unmatched`), so invented
//! methods and paths add no series and the exposition does not grow.

use awc::http::Method;

use crate::common::spawn_app;

/// The series in an exposition: its lines that are not comments.
fn series(text: &str) -> usize {
    text.lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .count()
}

/// Sends `count` requests with methods and paths never seen before, `round` keeping them apart
/// from another round's; some methods are kilobytes long.
async fn invented_requests(client: &awc::Client, base: &str, round: &str, count: usize) {
    for i in 0..count {
        let long = if i % 10 == 0 {
            "Q".repeat(4096)
        } else {
            String::new()
        };
        let method = Method::from_bytes(format!("X{round}{i}{long}").as_bytes())
            .expect("a valid method token");
        for path in ["/healthz", "/hooks/demo", &format!("/nowhere/{round}/{i}")] {
            let answer = client
                .request(method.clone(), format!("{base}{path}"))
                .send()
                .await
                .expect("the service answers");
            assert!(answer.status().is_client_error(), "{}", answer.status());
        }
        let unknown_path = client
            .get(format!("{base}/made/up/{round}/{i}"))
            .send()
            .await
            .expect("the service answers");
        assert_eq!(unknown_path.status(), 404);
    }
}

async fn scrape(client: &awc::Client, base: &str) -> String {
    let mut answer = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("the metrics answer");
    assert_eq!(answer.status(), 200);
    let body = answer
        .body()
        .limit(64 << 20)
        .await
        .expect("the metrics body");
    String::from_utf8(body.to_vec()).expect("UTF-8 metrics")
}

#[actix_web::test]
async fn invented_methods_and_paths_add_no_series_to_the_metrics() {
    let app = spawn_app().await;
    let client = awc::Client::default();
    let base = app.url("");
    // Every label an invented request can take appears once: `other`, `unmatched`, each status.
    invented_requests(&client, &base, "warm", 3).await;
    scrape(&client, &base).await;
    let before = scrape(&client, &base).await;

    invented_requests(&client, &base, "attack", 200).await;
    let after = scrape(&client, &base).await;

    assert_eq!(
        series(&after),
        series(&before),
        "new series after invented requests:\n{after}"
    );
    assert!(
        after.len() < before.len() + 4096,
        "the exposition grew from {} to {} bytes",
        before.len(),
        after.len()
    );
    assert!(after.contains(r#"method="other""#), "{after}");
    assert!(!after.contains("Xattack"), "an invented method is a label");
}
