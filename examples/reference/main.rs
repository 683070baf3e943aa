//! The reference servers of the load harness (`bench/run.sh`, see BENCHMARKS.md), in one example
//! so that the harness compiles and links one binary instead of four:
//!
//! ```sh
//! cargo run --release --example reference -- NAME [ARGUMENTS]
//! ```
//!
//! where NAME is `bare_handler`, `minimal_forwarder`, `durable_acceptor` or `sink`; each
//! module says what its server does and what its arguments are.

use std::io;

mod bare_handler;
mod durable_acceptor;
mod minimal_forwarder;
mod sink;

fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_default();
    let rest: Vec<String> = args.collect();
    let system = actix_web::rt::System::new();
    match name.as_str() {
        "bare_handler" => system.block_on(bare_handler::serve(rest)),
        "minimal_forwarder" => system.block_on(minimal_forwarder::serve(rest)),
        "durable_acceptor" => system.block_on(durable_acceptor::serve(rest)),
        "sink" => system.block_on(sink::serve(rest)),
        other => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "unknown reference server {other:?}: name one of bare_handler, \
                 minimal_forwarder, durable_acceptor, sink"
            ),
        )),
    }
}
