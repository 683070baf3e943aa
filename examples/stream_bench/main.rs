//! The live-stream benchmark's client (run by `bench/streams.sh`; results in BENCHMARKS.md):
//! opens LISTENERS ntfy WebSockets (`/<uuid>/ws`) on one device of a running service, sends
//! messages at RATE per second for SECONDS, either straight to the embedded API
//! (`POST /pushjet/message`) or through a webhook route (`POST /hooks/<route>`), and prints the
//! latency from each request's answer (200 or 202) and from its start to the frame on every
//! listening socket, as p50/p99 in milliseconds, plus frames that never arrived.
//!
//! ```text
//! stream_bench BASE_URL UUID api SECRET LISTENERS RATE SECONDS
//! stream_bench BASE_URL UUID webhook ROUTE LISTENERS RATE SECONDS
//! stream_bench BASE_URL UUID idle - LISTENERS 0 SECONDS     # opens them and waits (memory)
//! ```
//!
//! A frame may arrive before the answer that follows the store's commit reaches the sender; such
//! latencies "from the answer" are negative and reported as they are.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;

/// When each message was sent and answered, by sequence number.
type Sent = Rc<RefCell<HashMap<u64, (Instant, Instant)>>>;
/// Every frame's arrival: (sequence number, when).
type Arrivals = Rc<RefCell<Vec<(u64, Instant)>>>;

fn client() -> awc::Client {
    awc::Client::builder()
        .connector(awc::Connector::new().limit(0))
        .timeout(Duration::from_secs(30))
        .finish()
}

/// The sequence number in a `message` event's text `bench <run> <n>` (`marker` is
/// `"message":"bench <run> `: a message left over from an earlier run never counts), found
/// without a JSON parser (the client must keep up with every frame).
fn sequence(frame: &[u8], marker: &str) -> Option<u64> {
    let text = std::str::from_utf8(frame).ok()?;
    let start = text.find(marker)? + marker.len();
    let digits: String = text[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

async fn listen(url: String, marker: Rc<str>, arrivals: Arrivals, opened: Rc<RefCell<usize>>) {
    let Ok((_, mut socket)) = client().ws(url).max_frame_size(1 << 20).connect().await else {
        eprintln!("a listener could not connect");
        return;
    };
    *opened.borrow_mut() += 1;
    while let Some(Ok(frame)) = socket.next().await {
        if let awc::ws::Frame::Text(text) = frame
            && let Some(seq) = sequence(&text, &marker)
        {
            arrivals.borrow_mut().push((seq, Instant::now()));
        }
    }
}

fn percentile(sorted: &[f64], share: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 - 1.0) * share).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, base, uuid, mode, key, listeners, rate, seconds] = args.as_slice() else {
        eprintln!(
            "usage: stream_bench BASE_URL UUID api|webhook|idle SECRET|ROUTE LISTENERS RATE SECONDS"
        );
        std::process::exit(2);
    };
    let listeners: usize = listeners.parse().expect("LISTENERS is a number");
    let rate: u64 = rate.parse().expect("RATE is a number");
    let seconds: u64 = seconds.parse().expect("SECONDS is a number");
    let (base, uuid, mode, key) = (base.clone(), uuid.clone(), mode.clone(), key.clone());
    actix_rt::System::new().block_on(async move {
        let arrivals: Arrivals = Rc::default();
        let sent: Sent = Rc::default();
        let opened = Rc::new(RefCell::new(0_usize));
        let ws_base = base.replacen("http", "ws", 1);
        let run = fastrand::u32(..);
        let marker: Rc<str> = format!("\"message\":\"bench {run} ").into();
        for _ in 0..listeners {
            actix_rt::spawn(listen(
                format!("{ws_base}/{uuid}/ws"),
                marker.clone(),
                arrivals.clone(),
                opened.clone(),
            ));
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while *opened.borrow() < listeners && Instant::now() < deadline {
            actix_rt::time::sleep(Duration::from_millis(50)).await;
        }
        println!("listeners open: {}", opened.borrow());
        if mode == "idle" {
            println!("ready");
            actix_rt::time::sleep(Duration::from_secs(seconds)).await;
            return;
        }
        let total = rate * seconds;
        let mut tick = actix_rt::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
        let in_flight = Rc::new(RefCell::new(0_u64));
        for seq in 0..total {
            tick.tick().await;
            let (base, key, mode, sent, in_flight) = (
                base.clone(),
                key.clone(),
                mode.clone(),
                sent.clone(),
                in_flight.clone(),
            );
            *in_flight.borrow_mut() += 1;
            actix_rt::spawn(async move {
                let text = format!("bench {run} {seq}");
                let start = Instant::now();
                let answered = if mode == "api" {
                    client()
                        .post(format!("{base}/pushjet/message"))
                        .send_form(&[("secret", key.as_str()), ("message", text.as_str())])
                        .await
                        .map(|response| response.status().as_u16())
                } else {
                    client()
                        .post(format!("{base}/hooks/{key}"))
                        .content_type("text/plain")
                        .send_body(text)
                        .await
                        .map(|response| response.status().as_u16())
                };
                match answered {
                    Ok(200 | 202) => {
                        sent.borrow_mut().insert(seq, (start, Instant::now()));
                    }
                    other => eprintln!("message {seq}: {other:?}"),
                }
                *in_flight.borrow_mut() -= 1;
            });
        }
        let drain = Instant::now() + Duration::from_secs(10);
        while Instant::now() < drain
            && (*in_flight.borrow() > 0
                || arrivals.borrow().len() < sent.borrow().len() * listeners)
        {
            actix_rt::time::sleep(Duration::from_millis(50)).await;
        }
        let sent = sent.borrow();
        let arrivals = arrivals.borrow();
        let (mut from_answer, mut from_start) = (Vec::new(), Vec::new());
        for (seq, arrived) in arrivals.iter() {
            if let Some((start, answered)) = sent.get(seq) {
                let arrived_ms = |since: Instant| {
                    if *arrived >= since {
                        arrived.duration_since(since).as_secs_f64() * 1000.0
                    } else {
                        -(since.duration_since(*arrived).as_secs_f64() * 1000.0)
                    }
                };
                from_answer.push(arrived_ms(*answered));
                from_start.push(arrived_ms(*start));
            }
        }
        from_answer.sort_by(f64::total_cmp);
        from_start.sort_by(f64::total_cmp);
        let expected = sent.len() * listeners;
        println!(
            "mode={mode} listeners={listeners} rate={rate}/s sent={} frames={} missing={} \
             from_answer_ms p50={:.2} p99={:.2} from_start_ms p50={:.2} p99={:.2}",
            sent.len(),
            from_answer.len(),
            expected.saturating_sub(from_answer.len()),
            percentile(&from_answer, 0.50),
            percentile(&from_answer, 0.99),
            percentile(&from_start, 0.50),
            percentile(&from_start, 0.99),
        );
    });
}
