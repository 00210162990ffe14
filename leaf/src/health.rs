//! Whether a node below (a leaf's worker, a load-balancer node's child) is in
//! rotation: one named state instead of two booleans, changed only by the
//! transitions written on [`Health::on`].
//!
//! ```text
//! Connecting ---- Up ------> InRotation      (worker: subscribed and reconciled; child: State answered)
//! InRotation ---- Failed --> OutOfRotation   (a failed call, State or stream)
//! OutOfRotation - Up ------> InRotation
//! any ----------- Lost ----> Connecting      (worker: the status stream is gone, resubscribing)
//! Connecting / OutOfRotation -- Failed --> unchanged
//! ```
//!
//! Only `InRotation` takes calls. A worker's reconciliation timer asks
//! `State` of every worker whose stream is up ([`Health::is_subscribed`]),
//! in rotation or not.

use std::sync::atomic::{AtomicU8, Ordering};

/// A node's health as this node sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Health {
    /// Not (or no longer) known to answer: never tried, or resubscribing.
    Connecting = 0,
    /// Takes calls.
    InRotation = 1,
    /// Reachable a moment ago but a call, `State` or stream failed since;
    /// back in rotation only when it answers again.
    OutOfRotation = 2,
}

/// What happened to a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HealthEvent {
    /// It answered: a worker's stream is subscribed and its `State` listed,
    /// or a child's `State` answered.
    Up,
    /// A call, `State` or stream failed.
    Failed,
    /// A worker's status stream is gone (its follower resubscribes).
    Lost,
}

impl Health {
    /// The state after `event`.
    pub fn on(self, event: HealthEvent) -> Health {
        match (self, event) {
            // Connecting | OutOfRotation | InRotation ---- Up ----> InRotation
            (_, HealthEvent::Up) => Health::InRotation,
            // InRotation ---- Failed ----> OutOfRotation
            (Health::InRotation, HealthEvent::Failed) => Health::OutOfRotation,
            // Connecting | OutOfRotation ---- Failed ----> unchanged
            (Health::Connecting | Health::OutOfRotation, HealthEvent::Failed) => self,
            // any ---- Lost ----> Connecting
            (_, HealthEvent::Lost) => Health::Connecting,
        }
    }

    /// Whether calls may go to the node.
    pub fn in_rotation(self) -> bool {
        self == Health::InRotation
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
    use HealthEvent::{Failed, Lost, Up};

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
    fn the_cell_reports_each_transition() {
        let cell = HealthCell::default();
        assert_eq!(cell.apply(Up), (Health::Connecting, Health::InRotation));
        assert_eq!(cell.apply(Failed), (Health::InRotation, Health::OutOfRotation));
        assert_eq!(cell.apply(Failed), (Health::OutOfRotation, Health::OutOfRotation));
        assert_eq!(cell.apply(Lost), (Health::OutOfRotation, Health::Connecting));
        assert_eq!(cell.get(), Health::Connecting);
    }
}
