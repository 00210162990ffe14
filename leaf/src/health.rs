//! Whether a node below (a leaf's worker, a load-balancer node's child) is in
//! rotation: one named state instead of two booleans, changed only by the
//! transitions written on [`Health::on`].
//!
//! ```text
//! Connecting ---- Up ------> InRotation      (worker: subscribed and reconciled; child: State answered)
//! InRotation ---- Late ----> Late1 ---- Late ----> Late2 ---- Late ----> OutOfRotation
//! Late1 / Late2 - OnTime --> InRotation      (a State answered in time)
//! InRotation / Late1 / Late2 -- Failed --> OutOfRotation   (a failed call, State or stream)
//! OutOfRotation - Up ------> InRotation
//! any ----------- Lost ----> Connecting      (worker: the status stream is gone, resubscribing)
//! Connecting / OutOfRotation -- Failed / Late / OnTime --> unchanged
//! ```
//!
//! `InRotation`, `Late1` and `Late2` take calls. A worker's reconciliation
//! timer asks `State` of every worker whose stream is up
//! ([`Health::is_subscribed`]), in rotation or not.
//!
//! A `State` that does not answer within its time is `Late`, not `Failed`:
//! on a saturated host (the scale benchmark's 1 000 fake workers share one
//! process and two cores) a busy node answers late while it still serves
//! calls, and taking it out at the first late answer sent its functions'
//! calls to cold starts elsewhere, which loaded the host further: one leaf
//! logged 1 422 "out of rotation" in a 60 s run
//! (`bench-results/scale.md`). Only [`LATE_IN_A_ROW`] late answers in a row
//! take a node out, like a readiness probe's failure threshold; a node that
//! is gone is noticed sooner by its calls, its stream or HTTP/2 keepalive.

use std::sync::atomic::{AtomicU8, Ordering};

/// A node's health as this node sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Health {
    /// Not (or no longer) known to answer: never tried, or resubscribing.
    Connecting = 0,
    /// Takes calls.
    InRotation = 1,
    /// Reachable a moment ago but a call, `State` or stream failed since (or
    /// [`LATE_IN_A_ROW`] `State`s were late); back in rotation only when it
    /// answers again.
    OutOfRotation = 2,
    /// In rotation, but its last `State` answered late (or not at all).
    Late1 = 3,
    /// In rotation, but its last two `State`s answered late.
    Late2 = 4,
}

/// Late `State` answers in a row that take a node out of rotation.
pub const LATE_IN_A_ROW: u32 = 3;

/// What happened to a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HealthEvent {
    /// It answered: a worker's stream is subscribed and its `State` listed,
    /// or a child's `State` answered.
    Up,
    /// A call, `State` or stream failed.
    Failed,
    /// A `State` did not answer within its time.
    Late,
    /// A `State` answered within its time.
    OnTime,
    /// A worker's status stream is gone (its follower resubscribes).
    Lost,
}

impl Health {
    /// The state after `event`.
    pub fn on(self, event: HealthEvent) -> Health {
        match (self, event) {
            // Connecting | OutOfRotation | InRotation ---- Up ----> InRotation
            (_, HealthEvent::Up) => Health::InRotation,
            // InRotation | Late1 | Late2 ---- Failed ----> OutOfRotation
            (Health::InRotation | Health::Late1 | Health::Late2, HealthEvent::Failed) => {
                Health::OutOfRotation
            }
            // InRotation -- Late --> Late1 -- Late --> Late2 -- Late --> OutOfRotation
            (Health::InRotation, HealthEvent::Late) => Health::Late1,
            (Health::Late1, HealthEvent::Late) => Health::Late2,
            (Health::Late2, HealthEvent::Late) => Health::OutOfRotation,
            // Late1 | Late2 ---- OnTime ----> InRotation
            (Health::Late1 | Health::Late2, HealthEvent::OnTime) => Health::InRotation,
            (Health::InRotation, HealthEvent::OnTime) => self,
            // Connecting | OutOfRotation ---- Failed | Late | OnTime ----> unchanged
            (
                Health::Connecting | Health::OutOfRotation,
                HealthEvent::Failed | HealthEvent::Late | HealthEvent::OnTime,
            ) => self,
            // any ---- Lost ----> Connecting
            (_, HealthEvent::Lost) => Health::Connecting,
        }
    }

    /// Whether calls may go to the node.
    pub fn in_rotation(self) -> bool {
        matches!(self, Health::InRotation | Health::Late1 | Health::Late2)
    }

    /// Whether the node's status stream (a worker's) is up, in rotation or
    /// not: such a worker is still reconciled.
    pub fn is_subscribed(self) -> bool {
        self != Health::Connecting
    }

    fn from_u8(v: u8) -> Health {
        match v {
            0 => Health::Connecting,
            1 => Health::InRotation,
            2 => Health::OutOfRotation,
            3 => Health::Late1,
            4 => Health::Late2,
            other => unreachable!("health {other} was never stored: a bug"),
        }
    }
}

/// A [`Health`] shared between tasks, changed atomically by events.
#[derive(Debug)]
pub struct HealthCell(AtomicU8);

impl Default for HealthCell {
    fn default() -> Self {
        HealthCell(AtomicU8::new(Health::Connecting as u8))
    }
}

impl HealthCell {
    pub fn get(&self) -> Health {
        Health::from_u8(self.0.load(Ordering::Acquire))
    }

    /// Applies `event`; returns the state before and after it.
    pub fn apply(&self, event: HealthEvent) -> (Health, Health) {
        let before = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |v| Some(Health::from_u8(v).on(event) as u8))
            .map_or_else(Health::from_u8, Health::from_u8);
        (before, before.on(event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use HealthEvent::{Failed, Late, Lost, OnTime, Up};

    #[test]
    fn connecting_takes_no_calls_until_up() {
        let h = Health::Connecting;
        assert!(!h.in_rotation() && !h.is_subscribed());
        assert_eq!(h.on(Up), Health::InRotation);
        assert_eq!(h.on(Failed), Health::Connecting);
        assert_eq!(h.on(Lost), Health::Connecting);
    }

    #[test]
    fn in_rotation_leaves_on_a_failure_or_a_lost_stream() {
        let h = Health::InRotation;
        assert!(h.in_rotation() && h.is_subscribed());
        assert_eq!(h.on(Up), Health::InRotation);
        assert_eq!(h.on(Failed), Health::OutOfRotation);
        assert_eq!(h.on(Lost), Health::Connecting);
    }

    #[test]
    fn out_of_rotation_comes_back_only_when_it_answers() {
        let h = Health::OutOfRotation;
        assert!(!h.in_rotation() && h.is_subscribed());
        assert_eq!(h.on(Failed), Health::OutOfRotation);
        assert_eq!(h.on(Up), Health::InRotation);
        assert_eq!(h.on(Lost), Health::Connecting);
    }

    #[test]
    fn only_the_third_late_state_in_a_row_takes_a_node_out() {
        let mut h = Health::InRotation;
        for _ in 1..LATE_IN_A_ROW {
            h = h.on(Late);
            assert!(h.in_rotation(), "{h:?} after fewer than {LATE_IN_A_ROW} late answers");
        }
        assert_eq!(h.on(Late), Health::OutOfRotation);
        assert_eq!(h.on(OnTime), Health::InRotation, "an answer in time clears the count");
        assert_eq!(Health::Late1.on(Failed), Health::OutOfRotation, "a failure still counts at once");
        assert_eq!(Health::Late2.on(Lost), Health::Connecting);
        for h in [Health::Connecting, Health::OutOfRotation] {
            assert_eq!(h.on(Late), h);
            assert_eq!(h.on(OnTime), h, "only Up brings {h:?} back");
        }
        assert_eq!(Health::InRotation.on(OnTime), Health::InRotation);
    }

    #[test]
    fn the_cell_reports_each_transition() {
        let cell = HealthCell::default();
        assert_eq!(cell.apply(Up), (Health::Connecting, Health::InRotation));
        assert_eq!(cell.apply(Failed), (Health::InRotation, Health::OutOfRotation));
        assert_eq!(cell.apply(Failed), (Health::OutOfRotation, Health::OutOfRotation));
        assert_eq!(cell.apply(Up), (Health::OutOfRotation, Health::InRotation));
        assert_eq!(cell.apply(Late), (Health::InRotation, Health::Late1));
        assert_eq!(cell.apply(Late), (Health::Late1, Health::Late2));
        assert_eq!(cell.apply(Late), (Health::Late2, Health::OutOfRotation));
        assert_eq!(cell.apply(Lost), (Health::OutOfRotation, Health::Connecting));
        assert_eq!(cell.get(), Health::Connecting);
    }
}
