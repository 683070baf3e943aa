//! The dispatcher: one task on the actix runtime that sends pending notifications from the outbox
//! to Pushjet.
//!
//! It uses the outbox only through its interface ([`Outbox`]), whatever backend keeps it. It wakes
//! when the outbox reports a change, when a run ends, and when the next notification falls due.
//! Each time it claims the routes whose oldest notification is due, oldest first, at most
//! `concurrency` at once, and starts a run for each claim as its own future within the task.
//!
//! A run sends its route's due notifications one after another, oldest first: the next is sent
//! only once Pushjet has accepted the one before it, so a route's notifications arrive in order.
//! It reads them from the outbox a batch at a time and hands each outcome over without waiting for
//! it: the commit of one send overlaps the next send (with redb, the outcomes of a run share the
//! committer's transactions with each other and with new webhooks). A notification is still
//! removed only once its outcome is committed; the run waits for every outcome it handed over
//! before it ends and gives its claim back. An outcome that cannot be committed is held, and
//! nothing more is sent until it is; one refused because the claim was lost (a shared database's
//! lease lapsed) is dropped instead: the route's new holder sends that notification (again). A
//! failure (retry later, dead letter) ends the run after its outcome is committed, so a
//! notification waiting for its retry holds back its route's later ones. A run ends after
//! [`RUN_LIMIT`] sends, so that a busy route does not keep its slot from the others.
//!
//! On shutdown it takes no new work, lets each run finish the send it is in and record the
//! outcomes, gives them a grace period, then drops the rest: they stay pending and are sent on the
//! next start.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use futures_util::future::LocalBoxFuture;
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::oneshot;

use super::outbox::records::{OutboxError, PendingRecord, duration_millis};
use super::observer::{Fate, SendReport};
use super::outbox::{Claim, Outbox, Outcome, Recording};
use super::retry::{Decision, RetryPolicy, whole_seconds};
use crate::config::DeliverySettings;
use crate::metrics::{self, Metrics};
use crate::pushjet::{Api, Error, NewMessage, SecretKey};
use crate::routes::{RouteName, Routes};

/// How many notifications a run reads from the outbox at once.
const READ_BATCH: usize = 64;
/// How often outcomes the outbox could not record are tried again, while nothing is sent.
const HELD_RETRY_DELAY: Duration = Duration::from_secs(5);

/// The most notifications one run sends before it frees its lane for the dispatcher to choose
/// again (the oldest due route first).
pub(super) const RUN_LIMIT: usize = 1024;

/// Where the dispatcher finds a route's secret when it sends: the configuration in force, so a
/// reload takes effect at the next send and no secret is ever written to the outbox.
pub trait RouteSecrets: Send + Sync + 'static {
    /// The Pushjet secret of the route, or `None` when no such route is configured now.
    fn secret(&self, route: &RouteName) -> Option<SecretKey>;
}

/// Routes swapped whole on reload; the application passes the whole configuration in force.
impl RouteSecrets for ArcSwap<Routes> {
    fn secret(&self, route: &RouteName) -> Option<SecretKey> {
        self.load()
            .get(route.as_str())
            .map(|found| found.secret.clone())
    }
}

/// The routes the dispatcher sends for.
pub type SharedRoutes = Arc<dyn RouteSecrets>;

/// Where notifications go: the Pushjet API, or a test's stand-in.
pub trait Upstream {
    /// Sends one message with a service's secret key.
    fn send(
        &self,
        secret: &SecretKey,
        message: &NewMessage,
    ) -> impl Future<Output = Result<(), Error>>;

    /// Told of each notification `route` (sending with `secret`) delivered, right after the
    /// send succeeded (the next send waits for it); nothing by default.
    fn delivered(
        &self,
        route: &RouteName,
        secret: &SecretKey,
        message: &NewMessage,
    ) -> impl Future<Output = ()> {
        let _ignored = (route, secret, message);
        std::future::ready(())
    }
}

impl Upstream for Api {
    fn send(
        &self,
        secret: &SecretKey,
        message: &NewMessage,
    ) -> impl Future<Output = Result<(), Error>> {
        Api::send(self, secret, message)
    }
}

/// What the dispatcher did when it stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Sends in flight at the stop that finished within the grace period.
    pub finished: usize,
    /// Sends still in flight when the grace period ended; they stay pending.
    pub abandoned: usize,
}

/// Controls a running dispatcher. Dropping it stops the dispatcher as [`Self::shutdown`] would,
/// with the configured grace period, without waiting for it.
#[derive(Debug)]
#[must_use = "dropping the handle stops the dispatcher"]
pub struct DispatcherHandle {
    stop: oneshot::Sender<Duration>,
    done: oneshot::Receiver<ShutdownReport>,
}

impl DispatcherHandle {
    /// Stops taking new work, waits up to `grace` for the sends in flight, and returns once the
    /// dispatcher has stopped. Whatever did not finish stays pending for the next start.
    pub async fn shutdown(self, grace: Duration) -> ShutdownReport {
        let Self { stop, done } = self;
        let _already_stopped = stop.send(grace);
        done.await.unwrap_or(ShutdownReport {
            finished: 0,
            abandoned: 0,
        })
    }
}

/// [`spawn_with`] a Pushjet [`Api`] at `api_url` as the upstream (the tests'; the application's
/// upstream also tells the routes' streams what it delivered, see `crate::app`).
#[cfg(test)]
pub(crate) fn spawn(
    outbox: Outbox,
    routes: SharedRoutes,
    api_url: crate::pushjet::ApiUrl,
    settings: &DeliverySettings,
    metrics: Arc<Metrics>,
) -> DispatcherHandle {
    let timeout = settings.send_timeout;
    spawn_with(outbox, routes, settings, metrics, move || {
        Api::at(api_url, timeout)
    })
}

/// Starts the dispatcher on the current actix arbiter with the upstream that `make_upstream`
/// creates inside the dispatcher's task (a Pushjet [`Api`]: awc clients stay on the thread that
/// made them). Must be called from within an actix system (e.g. in `Application::build`).
pub fn spawn_with<U, F>(
    outbox: Outbox,
    routes: SharedRoutes,
    settings: &DeliverySettings,
    metrics: Arc<Metrics>,
    make_upstream: F,
) -> DispatcherHandle
where
    U: Upstream + 'static,
    F: FnOnce() -> U + 'static,
{
    let (stop, stopped) = oneshot::channel();
    let (report, done) = oneshot::channel();
    let concurrency = settings.concurrency.max(1);
    let policy = RetryPolicy::new(settings);
    let default_grace = settings.shutdown_grace;
    actix_rt::spawn(async move {
        let context = Rc::new(Context {
            outbox,
            routes,
            upstream: make_upstream(),
            policy,
            metrics,
            stopping: Cell::new(false),
            held: RefCell::new(VecDeque::new()),
        });
        let outcome = dispatch(context, concurrency, stopped, default_grace).await;
        let _nobody_waits = report.send(outcome);
    });
    DispatcherHandle { stop, done }
}

struct Context<U> {
    outbox: Outbox,
    routes: SharedRoutes,
    upstream: U,
    policy: RetryPolicy,
    metrics: Arc<Metrics>,
    /// Set at shutdown: runs send nothing more.
    stopping: Cell<bool>,
    /// Outcomes of sends the outbox could not record, oldest first, each run's with its claim.
    /// While there are any, nothing more is sent: a notification whose "sent" is not on disk
    /// would otherwise be sent again.
    held: RefCell<VecDeque<Held>>,
}

/// A run's outcomes waiting to be recorded, and the claim they were sent under (given back
/// once they are recorded).
struct Held {
    claim: Claim,
    outcomes: VecDeque<(u64, Outcome)>,
}

/// The dispatcher's loop; returns when told to stop (or when its handle is dropped).
async fn dispatch<U: Upstream + 'static>(
    context: Rc<Context<U>>,
    concurrency: usize,
    mut stop: oneshot::Receiver<Duration>,
    default_grace: Duration,
) -> ShutdownReport {
    let mut in_flight: FuturesUnordered<LocalBoxFuture<'static, ()>> = FuturesUnordered::new();
    let outbox = &context.outbox;
    let grace = loop {
        if !context.record_held().await {
            tokio::select! {
                grace = &mut stop => break grace.unwrap_or(default_grace),
                Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
                () = tokio::time::sleep(HELD_RETRY_DELAY) => {}
            }
            continue;
        }
        let now = outbox.now();
        let mut next_due = None;
        let room = concurrency.saturating_sub(in_flight.len());
        if room > 0 {
            let due = outbox.claim_due(room).await;
            for claim in due.claims {
                in_flight.push(Box::pin(run(context.clone(), claim)));
            }
            if in_flight.len() < concurrency {
                next_due = due.next_due;
            }
        }
        let timer = async move {
            match next_due {
                Some(due) => {
                    tokio::time::sleep(Duration::from_millis(due.saturating_sub(now))).await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            grace = &mut stop => break grace.unwrap_or(default_grace),
            Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
            () = outbox.changed() => {}
            () = timer => {}
        }
    };
    context.stopping.set(true);
    let at_stop = in_flight.len();
    let drain = async { while in_flight.next().await.is_some() {} };
    let _grace_ran_out = tokio::time::timeout(grace, drain).await;
    let abandoned = in_flight.len();
    drop(in_flight);
    tracing::info!(
        finished = at_stop - abandoned,
        abandoned,
        pending = context.outbox.pending_count(),
        "delivery stopped; pending notifications will be sent on the next start"
    );
    ShutdownReport {
        finished: at_stop - abandoned,
        abandoned,
    }
}

/// One run of a claimed route: sends its due notifications in order, overlapping each outcome's
/// commit with the next send, until none is due, one fails, [`RUN_LIMIT`] is reached or the
/// dispatcher stops; then waits for every outcome to be committed and gives the claim back.
async fn run<U: Upstream>(context: Rc<Context<U>>, mut claim: Claim) {
    let outbox = &context.outbox;
    let route = claim.route().clone();
    let mut settling = VecDeque::new();
    let mut unrecorded = VecDeque::new();
    let mut sent = 0;
    'run: while sent < RUN_LIMIT && !context.stopping.get() {
        let batch = READ_BATCH.min(RUN_LIMIT - sent);
        let due = outbox.next_batch(&mut claim, batch).await;
        if due.is_empty() {
            break;
        }
        for (id, pending) in due {
            if context.stopping.get()
                || !context.settled_so_far(&route, &mut settling, &mut unrecorded)
            {
                break 'run;
            }
            let outcome = context.attempt(id, &route, &pending).await;
            let delivered = outcome == Outcome::Sent;
            let recording = outbox.record(&claim, id, outcome.clone());
            settling.push_back((id, outcome, recording));
            sent += 1;
            if !delivered {
                break 'run;
            }
        }
    }
    for (id, outcome, recording) in settling {
        if let Err(error) = recording.await {
            context.unrecorded(id, &route, outcome, &error, &mut unrecorded);
        }
    }
    if unrecorded.is_empty() {
        outbox.release(claim).await;
    } else {
        context.held.borrow_mut().push_back(Held {
            claim,
            outcomes: unrecorded,
        });
    }
}

impl<U: Upstream> Context<U> {
    /// Tries one send and decides what follows; logs one line with the outcome and tells the
    /// outbox's observer (the history) what happened.
    async fn attempt(&self, id: u64, route: &RouteName, pending: &PendingRecord) -> Outcome {
        let at = self.outbox.now();
        let (outcome, sent) = self.try_send(id, route, pending).await;
        if let Some(observer) = self.outbox.observer() {
            let (latency, error) = match &sent {
                Some((latency, result)) => (Some(*latency), result.as_ref().err()),
                None => (None, None),
            };
            observer.sent(SendReport {
                id,
                at,
                latency,
                error,
                fate: match &outcome {
                    Outcome::Sent => Fate::Sent,
                    Outcome::Retry { at, .. } => Fate::Retrying { until: *at },
                    Outcome::Dead { reason } => Fate::Dead {
                        reason: reason.clone(),
                    },
                },
            });
        }
        outcome
    }

    /// [`Self::attempt`] without the report: the outcome, and the send's duration and result
    /// when one was made.
    async fn try_send(
        &self,
        id: u64,
        route: &RouteName,
        pending: &PendingRecord,
    ) -> (Outcome, Option<(Duration, Result<(), Error>)>) {
        let Some(secret) = self.routes.secret(route) else {
            let reason = format!(
                "route `{route}` is no longer configured: add it back to \
                 PUSHJET_BRIDGE_ROUTES with its secret and retry the dead letter, or purge it"
            );
            return (self.dead_letter(id, route, reason), None);
        };
        let attempt = pending.attempts.saturating_add(1);
        let started = Instant::now();
        let sent = self.upstream.send(&secret, &pending.message).await;
        let latency = started.elapsed();
        if sent.is_ok() {
            self.upstream
                .delivered(route, &secret, &pending.message)
                .await;
        }
        let outcome = match &sent {
            Ok(()) => "ok",
            Err(error) if error.is_transient() => "transient",
            Err(_) => "permanent",
        };
        self.metrics.observe_pushjet(outcome, latency);
        let route_label = metrics::route_label(route.as_str());
        let error = match sent {
            Ok(()) => {
                self.metrics
                    .notifications_sent
                    .get_or_create(&route_label)
                    .inc();
                tracing::info!(
                    id,
                    route = %route,
                    attempt,
                    outcome = "sent",
                    "notification {id} for route `{route}` sent"
                );
                return (Outcome::Sent, Some((latency, Ok(()))));
            }
            Err(error) => error,
        };
        let now = self.outbox.now();
        let elapsed = Duration::from_millis(now.saturating_sub(pending.retrying_since));
        let outcome = match self.policy.decide(&error, route, attempt, elapsed) {
            Decision::RetryIn(delay) => {
                self.metrics
                    .notifications_retried
                    .get_or_create(&route_label)
                    .inc();
                tracing::warn!(
                    id,
                    route = %route,
                    attempt,
                    outcome = "retry",
                    "notification {id} for route `{route}` failed ({error}); retry in {}",
                    humantime::format_duration(whole_seconds(delay))
                );
                Outcome::Retry {
                    at: now.saturating_add(duration_millis(delay)),
                    error: error.to_string(),
                }
            }
            Decision::GiveUp(reason) => self.dead_letter(id, route, reason),
        };
        (outcome, Some((latency, Err(error))))
    }

    /// The outcome of a send could not be committed: it joins `unrecorded`, held, and nothing
    /// more is sent until the outbox records it (see [`Self::record_held`]); unless the claim
    /// was lost, when there is nothing to hold: the notification stays pending for the route's
    /// holder.
    fn unrecorded(
        &self,
        id: u64,
        route: &RouteName,
        outcome: Outcome,
        error: &OutboxError,
        unrecorded: &mut VecDeque<(u64, Outcome)>,
    ) {
        if let OutboxError::LeaseLost { .. } = error {
            tracing::warn!(id, route = %route, "{error}");
            return;
        }
        tracing::error!(
            id,
            route = %route,
            "cannot record the outcome of notification {id}; delivery pauses until the outbox \
             records it (tried again every {}): {error}",
            humantime::format_duration(HELD_RETRY_DELAY)
        );
        unrecorded.push_back((id, outcome));
    }

    /// Records the held outcomes, oldest first, and gives each run's claim back once its
    /// outcomes are recorded; true when none is left (sending may go on).
    async fn record_held(&self) -> bool {
        loop {
            let next = {
                let held = self.held.borrow();
                let Some(run) = held.front() else {
                    return true;
                };
                run.outcomes
                    .front()
                    .map(|(id, outcome)| (*id, outcome.clone()))
            };
            let Some((id, outcome)) = next else {
                let done = self.held.borrow_mut().pop_front();
                if let Some(run) = done {
                    self.outbox.release(run.claim).await;
                }
                continue;
            };
            let recording = match self.held.borrow().front() {
                Some(run) => self.outbox.record(&run.claim, id, outcome),
                None => return true,
            };
            match recording.await {
                Ok(()) => {
                    if let Some(run) = self.held.borrow_mut().front_mut() {
                        run.outcomes.pop_front();
                    }
                    tracing::info!(id, "the outcome of notification {id} is recorded");
                }
                // Held while the database was out of reach, too long: the route moved on.
                Err(error @ OutboxError::LeaseLost { .. }) => {
                    if let Some(run) = self.held.borrow_mut().front_mut() {
                        run.outcomes.pop_front();
                    }
                    tracing::warn!(id, "{error}");
                }
                Err(error) => {
                    tracing::warn!(
                        id,
                        "the outbox still cannot record the outcome of notification {id}: {error}"
                    );
                    return false;
                }
            }
        }
    }

    /// Collects the outcomes already committed, oldest first, without waiting for the others;
    /// false when one could not be committed (see [`Self::unrecorded`]), which ends the run.
    fn settled_so_far(
        &self,
        route: &RouteName,
        settling: &mut VecDeque<(u64, Outcome, Recording)>,
        unrecorded: &mut VecDeque<(u64, Outcome)>,
    ) -> bool {
        let mut all_recorded = true;
        while let Some((_, _, committed)) = settling.front_mut() {
            let Some(result) = (&mut *committed).now_or_never() else {
                break;
            };
            if let Some((id, outcome, _)) = settling.pop_front()
                && let Err(error) = result
            {
                self.unrecorded(id, route, outcome, &error, unrecorded);
                all_recorded = false;
            }
        }
        all_recorded
    }
}

impl<U> Context<U> {
    fn dead_letter(&self, id: u64, route: &RouteName, reason: String) -> Outcome {
        self.metrics
            .notifications_dead_lettered
            .get_or_create(&metrics::route_label(route.as_str()))
            .inc();
        tracing::error!(
            id,
            route = %route,
            outcome = "dead-lettered",
            "notification {id} for route `{route}` dead-lettered: {reason}"
        );
        Outcome::Dead { reason }
    }
}

#[cfg(test)]
mod tests;
