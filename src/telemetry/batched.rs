//! The log writer: lines gather in one buffer and a thread of their own writes them out together,
//! at most every [`GATHER`] (sooner once [`WRITE_AT`] bytes wait). A logging thread only appends
//! its formatted line under a lock; it wakes the writer for the first line after a quiet spell
//! and when a batch is large, not for every line, so that at thousands of lines a second the
//! writer wakes about a hundred times instead of once a line. Nothing is dropped: a logger waits
//! while [`MAX_WAITING`] bytes are not yet written. Once the guard is dropped the writer writes
//! out what waits and stops, and later lines are written directly.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long the writer gathers lines after the first one before it writes them.
const GATHER: Duration = Duration::from_millis(10);
/// Bytes that make the writer write at once.
const WRITE_AT: usize = 64 * 1024;
/// Bytes waiting at most; a logger beyond it waits for the writer.
const MAX_WAITING: usize = 4 * 1024 * 1024;

/// Where lines go; cheap to clone. Used as the subscriber's writer.
#[derive(Clone)]
pub(super) struct Batched {
    shared: Arc<Shared>,
}

struct Shared {
    waiting: Mutex<Waiting>,
    /// Wakes the writer: a first line, a large batch, or the end.
    line: Condvar,
    /// Wakes loggers waiting for room.
    room: Condvar,
    out: Mutex<Box<dyn Write + Send>>,
}

struct Waiting {
    bytes: Vec<u8>,
    /// The writer has stopped (or never started): lines are written directly.
    closed: bool,
}

/// Keeps the writer thread; dropping it writes out what waits and stops the thread.
pub(super) struct BatchedGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Batched {
    /// Starts the writer thread writing to `out`; without a thread (the system refused one)
    /// every line is written directly.
    pub(super) fn start(out: Box<dyn Write + Send>) -> (Self, BatchedGuard) {
        let shared = Arc::new(Shared {
            waiting: Mutex::new(Waiting {
                bytes: Vec::new(),
                closed: false,
            }),
            line: Condvar::new(),
            room: Condvar::new(),
            out: Mutex::new(out),
        });
        let writer = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("log-writer".to_owned())
            .spawn(move || write_until_closed(&writer));
        let thread = match thread {
            Ok(thread) => Some(thread),
            Err(_) => {
                lock(&shared.waiting).closed = true;
                None
            }
        };
        let guard = BatchedGuard {
            shared: Arc::clone(&shared),
            thread,
        };
        (Self { shared }, guard)
    }
}

fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The writer thread: waits for a first line, gathers for [`GATHER`] (or until [`WRITE_AT`]
/// bytes), writes them out in one go, and again, until closed with nothing left.
fn write_until_closed(shared: &Shared) {
    let mut spare = Vec::new();
    loop {
        let mut waiting = lock(&shared.waiting);
        while waiting.bytes.is_empty() && !waiting.closed {
            waiting = shared
                .line
                .wait(waiting)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if waiting.bytes.is_empty() {
            return;
        }
        let deadline = Instant::now() + GATHER;
        while waiting.bytes.len() < WRITE_AT && !waiting.closed {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            waiting = shared
                .line
                .wait_timeout(waiting, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        std::mem::swap(&mut waiting.bytes, &mut spare);
        drop(waiting);
        shared.room.notify_all();
        let mut out = lock(&shared.out);
        // Nowhere to report a failed write of the log itself: the lines are lost, not the service.
        let _ = out.write_all(&spare).and_then(|()| out.flush());
        drop(out);
        spare.clear();
    }
}

impl Write for &Batched {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        let shared = &self.shared;
        let mut waiting = lock(&shared.waiting);
        while waiting.bytes.len() >= MAX_WAITING && !waiting.closed {
            waiting = shared
                .room
                .wait(waiting)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if waiting.closed {
            drop(waiting);
            let mut out = lock(&shared.out);
            out.write_all(line)?;
            out.flush()?;
            return Ok(line.len());
        }
        let first = waiting.bytes.is_empty();
        waiting.bytes.extend_from_slice(line);
        let large = waiting.bytes.len() >= WRITE_AT;
        drop(waiting);
        if first || large {
            shared.line.notify_one();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Batched {
    type Writer = &'a Batched;

    fn make_writer(&'a self) -> Self::Writer {
        self
    }
}

impl Drop for BatchedGuard {
    fn drop(&mut self) {
        lock(&self.shared.waiting).closed = true;
        self.shared.line.notify_one();
        self.shared.room.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An output the test can read while the writer writes to it; a slow one takes 20 ms a
    /// write, so that loggers outrun the writer.
    #[derive(Clone, Default)]
    struct Collected(Arc<Mutex<Vec<u8>>>, bool);

    impl Write for Collected {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            if self.1 {
                std::thread::sleep(Duration::from_millis(20));
            }
            lock(&self.0).extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Collected {
        fn text(&self) -> String {
            String::from_utf8(lock(&self.0).clone()).expect("UTF-8")
        }
    }

    #[test]
    fn a_lone_line_is_written_without_waiting_for_more() {
        let out = Collected::default();
        let (writer, _guard) = Batched::start(Box::new(out.clone()));
        (&writer).write_all(b"one line\n").expect("written");
        let deadline = Instant::now() + Duration::from_secs(5);
        while out.text().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        assert_eq!(out.text(), "one line\n");
    }

    #[test]
    fn loggers_outrunning_a_slow_writer_wait_and_lose_no_line() {
        let out = Collected(Arc::default(), true);
        let (writer, guard) = Batched::start(Box::new(out.clone()));
        let line_bytes = 1000;
        // Twice what may wait: the loggers must wait for the writer at least once.
        let lines_per_thread = 2 * MAX_WAITING / line_bytes / 4;
        let threads: Vec<_> = (0..4)
            .map(|thread| {
                let writer = writer.clone();
                std::thread::spawn(move || {
                    for number in 0..lines_per_thread {
                        let mut line = format!("t{thread} n{number:08} ");
                        line.push_str(&"x".repeat(line_bytes - line.len() - 1));
                        line.push('\n');
                        (&writer).write_all(line.as_bytes()).expect("written");
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("the logging thread ends");
        }
        drop(guard);
        let text = out.text();
        let mut next = [0usize; 4];
        for line in text.lines() {
            assert_eq!(line.len(), line_bytes - 1, "a whole line: {line:.40}");
            let thread: usize = line[1..2].parse().expect("thread");
            let number: usize = line[4..12].parse().expect("number");
            assert_eq!(number, next[thread], "in order for thread {thread}");
            next[thread] += 1;
        }
        assert_eq!(next, [lines_per_thread; 4], "every line");
    }

    #[test]
    fn dropping_the_guard_writes_what_waits_and_later_lines_go_directly() {
        let out = Collected::default();
        let (writer, guard) = Batched::start(Box::new(out.clone()));
        (&writer).write_all(b"before\n").expect("written");
        drop(guard);
        assert_eq!(out.text(), "before\n");
        (&writer).write_all(b"after\n").expect("written");
        assert_eq!(out.text(), "before\nafter\n");
    }
}
