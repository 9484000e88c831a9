//! Dyno health as pure state with the time passed in: the active-check state machine
//! (consecutive results against thresholds) and passive quarantine after a connect failure.
//! The shell (`checker`, `proxy`) owns the clocks and sockets and stores the verdicts in
//! atomics; everything that decides lives here.

use std::time::Duration;

/// How long a connect failure keeps a dyno out of rotation.
pub const QUARANTINE: Duration = Duration::from_secs(5);

/// A change of an active-check verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Enough consecutive failures: mark it down.
    Down,
    /// Enough consecutive successes: mark it up again.
    Up,
}

/// One dyno's active-check state. A new dyno is up until checks say otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Active {
    up: bool,
    /// Consecutive results that disagree with `up`.
    streak: u32,
}

impl Default for Active {
    fn default() -> Self {
        Self::new()
    }
}

impl Active {
    /// A dyno that has not been checked yet: up.
    pub const fn new() -> Self {
        Self {
            up: true,
            streak: 0,
        }
    }

    /// Whether the checks consider it up.
    pub const fn is_up(&self) -> bool {
        self.up
    }

    /// Records one check result; returns the transition it caused, if any. Thresholds of 0
    /// act as 1 (one result is always enough evidence at minimum).
    pub fn observe(
        &mut self,
        ok: bool,
        unhealthy_after: u32,
        healthy_after: u32,
    ) -> Option<Transition> {
        if ok == self.up {
            self.streak = 0;
            return None;
        }
        self.streak = self.streak.saturating_add(1);
        let needed = if self.up {
            unhealthy_after
        } else {
            healthy_after
        }
        .max(1);
        if self.streak < needed {
            return None;
        }
        self.up = ok;
        self.streak = 0;
        Some(if ok { Transition::Up } else { Transition::Down })
    }
}

/// Milliseconds on the router's monotonic clock until which a dyno failing to connect at
/// `now_ms` stays quarantined.
pub fn quarantine_until(now_ms: u64) -> u64 {
    now_ms.saturating_add(QUARANTINE.as_millis() as u64)
}

/// Whether a dyno counts as up at `now_ms`: not marked down by active checks and not
/// quarantined (a quarantined dyno counts as down for fail-open and zone decisions too).
pub fn is_up(marked_down: bool, quarantined_until_ms: u64, now_ms: u64) -> bool {
    !marked_down && now_ms >= quarantined_until_ms
}

/// The delay before the next active check: `interval` ±10 %, so checks of many dynos do not
/// fire in lockstep. `unit` is a uniform number in `[0, 1)`.
pub fn jittered(interval: Duration, unit: f64) -> Duration {
    let factor = 0.9 + 0.2 * unit.clamp(0.0, 1.0);
    interval.mul_f64(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn down_after_threshold_and_back() {
        let mut a = Active::new();
        assert!(a.is_up());
        assert_eq!(a.observe(false, 2, 3), None);
        assert_eq!(a.observe(true, 2, 3), None); // streak broken
        assert_eq!(a.observe(false, 2, 3), None);
        assert_eq!(a.observe(false, 2, 3), Some(Transition::Down));
        assert!(!a.is_up());
        assert_eq!(a.observe(false, 2, 3), None);
        assert_eq!(a.observe(true, 2, 3), None);
        assert_eq!(a.observe(true, 2, 3), None);
        assert_eq!(a.observe(true, 2, 3), Some(Transition::Up));
        assert!(a.is_up());
    }

    #[test]
    fn zero_thresholds_act_as_one() {
        let mut a = Active::new();
        assert_eq!(a.observe(false, 0, 0), Some(Transition::Down));
        assert_eq!(a.observe(true, 0, 0), Some(Transition::Up));
    }

    #[test]
    fn quarantine_window() {
        let until = quarantine_until(1_000);
        assert_eq!(until, 6_000);
        assert!(!is_up(false, until, 5_999));
        assert!(is_up(false, until, 6_000));
        assert!(!is_up(true, 0, 10_000));
        assert!(is_up(false, 0, 0));
        assert_eq!(quarantine_until(u64::MAX), u64::MAX);
    }

    #[test]
    fn jitter_bounds() {
        let i = Duration::from_secs(2);
        assert_eq!(jittered(i, 0.0), Duration::from_millis(1800));
        assert!(jittered(i, 0.999) < Duration::from_millis(2200));
        assert_eq!(jittered(i, 7.0), Duration::from_millis(2200));
    }
}
