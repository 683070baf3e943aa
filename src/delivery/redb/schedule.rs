//! The in-memory picture of the outbox's pending notifications that the dispatcher plans with:
//! one lane per route holding its pending ids in order, each with the time it is next due.
//!
//! A lane is worked by one run at a time (the claim it is taken with, numbered): the run sends the
//! lane's due notifications from its head, lowest id first, one after another, so a route's
//! notifications reach Pushjet in the order they were queued. Only the run frees its lane
//! ([`Schedule::release`], with its claim's number);
//! the committer's changes (an id removed or rescheduled once its outcome is on disk) never do.
//! Both hold its mutex only for a few map operations, never across I/O.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::routes::RouteName;

/// Every pending notification by route, with due times; times are milliseconds since the epoch.
#[derive(Debug, Default)]
pub(super) struct Schedule {
    lanes: HashMap<RouteName, Lane>,
    /// (time it started waiting, id) of every pending notification, to find the oldest.
    waiting: BTreeSet<(u64, u64)>,
    /// The number of the last claim handed out.
    last_claim: u64,
}

#[derive(Debug, Default)]
struct Lane {
    items: BTreeMap<u64, Item>,
    /// The claim of the run sending this lane's notifications, if one is.
    claim: Option<u64>,
}

#[derive(Debug, Clone, Copy)]
struct Item {
    due: u64,
    since: u64,
}

impl Schedule {
    /// Adds a pending notification, due at `due`, waiting since `since`.
    pub(super) fn insert(&mut self, id: u64, route: RouteName, due: u64, since: u64) {
        let lane = self.lanes.entry(route).or_default();
        if let Some(old) = lane.items.insert(id, Item { due, since }) {
            self.waiting.remove(&(old.since, id));
        }
        self.waiting.insert((since, id));
    }

    /// Sets when a notification is next due.
    pub(super) fn reschedule(&mut self, id: u64, route: &RouteName, due: u64) {
        if let Some(item) = self
            .lanes
            .get_mut(route)
            .and_then(|lane| lane.items.get_mut(&id))
        {
            item.due = due;
        }
    }

    /// Drops a notification that is no longer pending.
    pub(super) fn remove(&mut self, id: u64, route: &RouteName) {
        let Some(lane) = self.lanes.get_mut(route) else {
            return;
        };
        if let Some(item) = lane.items.remove(&id) {
            self.waiting.remove(&(item.since, id));
        }
        if lane.items.is_empty() && lane.claim.is_none() {
            self.lanes.remove(route);
        }
    }

    /// Ends a lane's run, the one holding `claim`: the lane may be taken again.
    pub(super) fn release(&mut self, route: &RouteName, claim: u64) {
        let Some(lane) = self.lanes.get_mut(route) else {
            return;
        };
        if lane.claim != Some(claim) {
            return;
        }
        lane.claim = None;
        if lane.items.is_empty() {
            self.lanes.remove(route);
        }
    }

    /// The ids a lane's run sends next: its notifications after `after` (from its head when
    /// `None`), in order, up to `max`, stopping at the first that is not due by `now` (a
    /// notification waiting for its retry holds back the ones behind it).
    pub(super) fn due_after(
        &self,
        route: &RouteName,
        after: Option<u64>,
        now: u64,
        max: usize,
    ) -> Vec<u64> {
        let Some(lane) = self.lanes.get(route) else {
            return Vec::new();
        };
        let start = after.map_or(0, |after| after.saturating_add(1));
        lane.items
            .range(start..)
            .take(max)
            .take_while(|(_, item)| item.due <= now)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Claims up to `room` lanes whose head is due by `now`, oldest head first; returns each
    /// lane's route with the number of its claim.
    pub(super) fn take_due(&mut self, now: u64, room: usize) -> Vec<(RouteName, u64)> {
        let mut due: Vec<(u64, RouteName)> = self
            .lanes
            .iter()
            .filter(|(_, lane)| lane.claim.is_none())
            .filter_map(|(route, lane)| {
                let (id, item) = lane.items.first_key_value()?;
                (item.due <= now).then(|| (*id, route.clone()))
            })
            .collect();
        due.sort_unstable_by_key(|(id, _)| *id);
        due.truncate(room);
        let mut claimed = Vec::with_capacity(due.len());
        for (_, route) in due {
            if let Some(lane) = self.lanes.get_mut(&route) {
                self.last_claim = self.last_claim.wrapping_add(1);
                lane.claim = Some(self.last_claim);
                claimed.push((route, self.last_claim));
            }
        }
        claimed
    }

    /// The earliest time a free lane's head is due, if any lane is free and not empty.
    pub(super) fn next_due(&self) -> Option<u64> {
        self.lanes
            .values()
            .filter(|lane| lane.claim.is_none())
            .filter_map(|lane| lane.items.first_key_value().map(|(_, item)| item.due))
            .min()
    }

    /// How many notifications are pending.
    pub(super) fn len(&self) -> usize {
        self.waiting.len()
    }

    /// How many notifications are pending per route that has any.
    pub(super) fn len_by_route(&self) -> BTreeMap<RouteName, u64> {
        self.lanes
            .iter()
            .filter(|(_, lane)| !lane.items.is_empty())
            .map(|(route, lane)| (route.clone(), lane.items.len() as u64))
            .collect()
    }

    /// Since when the longest-waiting notification has been pending.
    pub(super) fn oldest_since(&self) -> Option<u64> {
        self.waiting.first().map(|(since, _)| *since)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(name: &str) -> RouteName {
        RouteName::parse(name).unwrap()
    }

    #[test]
    fn only_the_head_of_a_free_lane_is_taken_oldest_first() {
        let mut schedule = Schedule::default();
        schedule.insert(1, route("a"), 0, 0);
        schedule.insert(2, route("a"), 0, 0);
        schedule.insert(3, route("b"), 0, 0);
        schedule.insert(4, route("c"), 0, 0);
        assert_eq!(schedule.take_due(10, 2), [(route("a"), 1), (route("b"), 2)]);
        assert_eq!(schedule.take_due(10, 5), [(route("c"), 3)]);
        assert_eq!(schedule.take_due(10, 5), []);
        schedule.remove(1, &route("a"));
        assert_eq!(schedule.take_due(10, 5), [], "lane a is still busy");
        schedule.release(&route("a"), 1);
        assert_eq!(schedule.take_due(10, 5), [(route("a"), 4)]);
    }

    #[test]
    fn a_run_takes_the_due_ids_after_the_last_one_it_sent_in_order() {
        let mut schedule = Schedule::default();
        for id in 1..=5 {
            schedule.insert(id, route("a"), 0, 0);
        }
        schedule.insert(6, route("b"), 0, 0);
        assert_eq!(schedule.take_due(10, 1), [(route("a"), 1)]);
        assert_eq!(schedule.due_after(&route("a"), None, 10, 3), [1, 2, 3]);
        assert_eq!(schedule.due_after(&route("a"), Some(3), 10, 3), [4, 5]);
        schedule.reschedule(4, &route("a"), 100);
        assert_eq!(
            schedule.due_after(&route("a"), Some(3), 10, 3),
            [] as [u64; 0],
            "an id waiting for its retry holds back the ones behind it"
        );
        assert_eq!(schedule.due_after(&route("z"), None, 10, 3), [] as [u64; 0]);
    }

    #[test]
    fn a_busy_lane_outlives_its_last_notification_until_released() {
        let mut schedule = Schedule::default();
        schedule.insert(1, route("a"), 0, 0);
        assert_eq!(schedule.take_due(10, 5), [(route("a"), 1)]);
        schedule.remove(1, &route("a"));
        schedule.insert(2, route("a"), 0, 0);
        assert_eq!(
            schedule.take_due(10, 5),
            [],
            "a second run of the same route must not start while the first is busy"
        );
        schedule.release(&route("a"), 1);
        assert_eq!(schedule.take_due(10, 5), [(route("a"), 2)]);
        schedule.remove(2, &route("a"));
        schedule.release(&route("a"), 2);
        assert!(schedule.lanes.is_empty());
    }

    #[test]
    fn only_the_claim_a_lane_is_held_with_frees_it() {
        let mut schedule = Schedule::default();
        schedule.insert(1, route("a"), 0, 0);
        assert_eq!(schedule.take_due(10, 5), [(route("a"), 1)]);
        schedule.release(&route("a"), 1);
        assert_eq!(schedule.take_due(10, 5), [(route("a"), 2)]);
        schedule.release(&route("a"), 1);
        assert_eq!(
            schedule.take_due(10, 5),
            [],
            "an earlier claim given back again does not free the lane"
        );
        schedule.release(&route("a"), 2);
        assert_eq!(schedule.take_due(10, 5), [(route("a"), 3)]);
    }

    #[test]
    fn a_head_that_is_not_due_holds_its_lane_back() {
        let mut schedule = Schedule::default();
        schedule.insert(1, route("a"), 100, 0);
        schedule.insert(2, route("a"), 0, 0);
        assert_eq!(schedule.take_due(50, 5), []);
        assert_eq!(schedule.next_due(), Some(100));
        assert_eq!(schedule.take_due(100, 5), [(route("a"), 1)]);
        assert_eq!(schedule.next_due(), None);
        schedule.reschedule(1, &route("a"), 300);
        assert_eq!(schedule.next_due(), None, "the lane is busy until released");
        schedule.release(&route("a"), 1);
        assert_eq!(schedule.next_due(), Some(300));
    }

    #[test]
    fn counts_and_the_oldest_waiting_follow_inserts_and_removals() {
        let mut schedule = Schedule::default();
        assert_eq!(schedule.oldest_since(), None);
        schedule.insert(5, route("a"), 0, 20);
        schedule.insert(6, route("b"), 0, 10);
        assert_eq!((schedule.len(), schedule.oldest_since()), (2, Some(10)));
        schedule.remove(6, &route("b"));
        assert_eq!((schedule.len(), schedule.oldest_since()), (1, Some(20)));
        schedule.remove(5, &route("a"));
        assert_eq!((schedule.len(), schedule.oldest_since()), (0, None));
        assert!(schedule.lanes.is_empty());
    }
}
