//! Failed sign-ins counted per client address: past [`MAX_FAILURES`] in a minute, the address may
//! not try again until the minute is over, whether its next token is right or wrong (otherwise
//! the limit would not slow down guessing).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed sign-ins an address may make in one window.
pub const MAX_FAILURES: u32 = 5;
/// The window failed sign-ins are counted in.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Past this many addresses tracked, those whose window is over are forgotten.
const TRACKED_ADDRESSES: usize = 10_000;

/// Failed sign-ins per address: each address's count and when its window started.
#[derive(Debug, Default)]
pub struct SignInFailures(Mutex<HashMap<IpAddr, (u32, Instant)>>);

impl SignInFailures {
    /// `Err(wait)` when `address` failed too often and must wait that long.
    pub fn check(&self, address: IpAddr, now: Instant) -> Result<(), Duration> {
        let Ok(failures) = self.0.lock() else {
            return Err(WINDOW);
        };
        match failures.get(&address) {
            Some((count, started)) if *count >= MAX_FAILURES => {
                let over = *started + WINDOW;
                if over > now { Err(over - now) } else { Ok(()) }
            }
            _ => Ok(()),
        }
    }

    /// Counts a failed sign-in of `address`.
    pub fn fail(&self, address: IpAddr, now: Instant) {
        let Ok(mut failures) = self.0.lock() else {
            return;
        };
        if failures.len() >= TRACKED_ADDRESSES {
            failures.retain(|_, (_, started)| *started + WINDOW > now);
        }
        let entry = failures.entry(address).or_insert((0, now));
        if entry.1 + WINDOW <= now {
            *entry = (0, now);
        }
        entry.0 += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_held_back_after_too_many_failures_until_the_window_ends() {
        let failures = SignInFailures::default();
        let address: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let start = Instant::now();
        for _ in 0..MAX_FAILURES {
            assert!(failures.check(address, start).is_ok());
            failures.fail(address, start);
        }
        let wait = failures.check(address, start).expect_err("held back");
        assert!(wait <= WINDOW && wait > Duration::ZERO);
        assert!(failures.check(other, start).is_ok());
        assert!(failures.check(address, start + WINDOW).is_ok());
        failures.fail(address, start + WINDOW);
        assert!(failures.check(address, start + WINDOW).is_ok());
    }
}
