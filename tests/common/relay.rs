//! A TCP relay in front of a server that can cut its connections on cue: the network between one
//! replica and its database failing while the others still reach it. Plain threads, one pair per
//! connection.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct State {
    cut: AtomicBool,
    /// Both ends of every relayed connection, to break them when cut.
    open: Mutex<Vec<TcpStream>>,
}

/// A running relay to `127.0.0.1:<target>`.
pub struct Relay {
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    state: Arc<State>,
}

impl Relay {
    /// Starts relaying connections to `target`'s port on 127.0.0.1.
    pub fn start(target: u16) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let port = listener.local_addr().expect("an address").port();
        let state = Arc::new(State::default());
        let shared = state.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if shared.cut.load(Ordering::SeqCst) {
                    let _closed = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                relay(&shared, client, server);
            }
        });
        Relay { port, state }
    }

    /// Breaks every connection and closes new ones at once, until [`Relay::mend`].
    pub fn cut(&self) {
        self.state.cut.store(true, Ordering::SeqCst);
        for stream in self.state.open.lock().expect("not poisoned").drain(..) {
            let _closed = stream.shutdown(Shutdown::Both);
        }
    }

    /// Relays new connections again.
    pub fn mend(&self) {
        self.state.cut.store(false, Ordering::SeqCst);
    }
}

/// Copies both ways between `client` and `server` until either side closes.
fn relay(state: &State, client: TcpStream, server: TcpStream) {
    let mut open = state.open.lock().expect("not poisoned");
    for (from, to) in [(&client, &server), (&server, &client)] {
        let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
            return;
        };
        std::thread::spawn(move || {
            let mut buffer = [0u8; 16 * 1024];
            while let Ok(read) = from.read(&mut buffer) {
                if read == 0 || to.write_all(&buffer[..read]).is_err() {
                    break;
                }
            }
            let _closed = to.shutdown(Shutdown::Both);
            let _closed = from.shutdown(Shutdown::Both);
        });
    }
    open.push(client);
    open.push(server);
}
