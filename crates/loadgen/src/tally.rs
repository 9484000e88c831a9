//! Counts and latencies: one `Tally` per worker, merged at the end into a [`Report`].

use std::time::Duration;

use tokio::time::Instant;

/// What one worker counted inside the measured window.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    ok: u64,
    resumed: u64,
    errors: u64,
    pub(crate) tail: u64,
    /// Connection times (connect to EOF), microseconds.
    micros: Vec<u32>,
    first_error: Option<(Instant, String)>,
}

/// What a run measured; [`Report::to_json`] is the line `tls-storm` prints.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// Connections that completed (handshake, `HTTP/1.1 200`, EOF) inside the window.
    pub ok: u64,
    /// Connections that failed inside the window (any step).
    pub errors: u64,
    /// Of `ok`, how many handshakes the server resumed (`HandshakeKind::Resumed`).
    pub resumed: u64,
    /// Connections that started inside the window and finished after it (not counted).
    pub tail: u64,
    /// The measured window, seconds.
    pub secs: f64,
    /// `ok` per second.
    pub rate: f64,
    /// Median connection time (connect to EOF), milliseconds.
    pub p50_ms: f64,
    /// 99th percentile connection time, milliseconds.
    pub p99_ms: f64,
    /// The generator's own CPU (user + system) per completed connection, microseconds.
    pub client_cpu_us_per_handshake: f64,
    /// The generator's CPU over the window, in cores: near 1.0 the client, not the
    /// server, is what limits the rate.
    pub client_cpu_cores: f64,
    /// The first failure, with its causes (the others are only counted).
    pub first_error: Option<String>,
}

impl Tally {
    pub(crate) fn record(&mut self, took: Duration, resumed: bool) {
        self.ok += 1;
        self.resumed += u64::from(resumed);
        self.micros
            .push(u32::try_from(took.as_micros()).unwrap_or(u32::MAX));
    }

    pub(crate) fn note_error(&mut self, at: Instant, what: String) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some((at, what));
        }
    }

    pub(crate) fn merge(&mut self, other: Self) {
        self.ok += other.ok;
        self.resumed += other.resumed;
        self.errors += other.errors;
        self.tail += other.tail;
        self.micros.extend(other.micros);
        // The earliest failure of all workers is "the first".
        match (&self.first_error, other.first_error) {
            (Some((mine, _)), Some((theirs, what))) if theirs < *mine => {
                self.first_error = Some((theirs, what));
            }
            (None, Some(e)) => self.first_error = Some(e),
            _ => {}
        }
    }

    pub(crate) fn report(mut self, window: Duration, cpu: Duration) -> Report {
        self.micros.sort_unstable();
        let secs = window.as_secs_f64();
        // Precision loss from u64 to f64 starts at 2^53 connections.
        #[allow(clippy::cast_precision_loss)]
        let ok = self.ok as f64;
        Report {
            ok: self.ok,
            errors: self.errors,
            resumed: self.resumed,
            tail: self.tail,
            secs,
            rate: ok / secs,
            p50_ms: percentile(&self.micros, 50),
            p99_ms: percentile(&self.micros, 99),
            client_cpu_us_per_handshake: if self.ok == 0 {
                0.0
            } else {
                cpu.as_secs_f64() * 1e6 / ok
            },
            client_cpu_cores: cpu.as_secs_f64() / secs,
            first_error: self.first_error.map(|(_, what)| what),
        }
    }
}

/// Nearest-rank percentile of sorted microseconds, in milliseconds (0 with no samples).
fn percentile(sorted: &[u32], pct: usize) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (sorted.len() * pct).div_ceil(100).max(1);
    let i = rank.min(sorted.len()) - 1;
    sorted.get(i).map_or(0.0, |&us| f64::from(us) / 1000.0)
}

impl Report {
    /// One JSON object on one line (what `tls-storm` prints and `tls_handshake.py` reads).
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "ok": self.ok,
            "errors": self.errors,
            "resumed": self.resumed,
            "tail": self.tail,
            "secs": self.secs,
            "rate": round(self.rate, 1),
            "p50_ms": round(self.p50_ms, 3),
            "p99_ms": round(self.p99_ms, 3),
            "client_cpu_us_per_handshake": round(self.client_cpu_us_per_handshake, 1),
            "client_cpu_cores": round(self.client_cpu_cores, 3),
            "first_error": self.first_error,
        })
        .to_string()
    }
}

fn round(x: f64, places: i32) -> f64 {
    let m = 10f64.powi(places);
    (x * m).round() / m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<u32> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(percentile(&v, 50), 50.0);
        assert_eq!(percentile(&v, 99), 99.0);
        assert_eq!(percentile(&[7000], 99), 7.0);
        assert_eq!(percentile(&[], 50), 0.0);
    }

    #[test]
    fn merge_keeps_the_earliest_error() {
        let t0 = Instant::now();
        let mut a = Tally::default();
        a.note_error(t0 + Duration::from_millis(5), "late".into());
        let mut b = Tally::default();
        b.note_error(t0, "early".into());
        b.record(Duration::from_millis(2), true);
        a.merge(b);
        let r = a.report(Duration::from_secs(2), Duration::from_millis(1));
        assert_eq!(r.errors, 2);
        assert_eq!(r.ok, 1);
        assert_eq!(r.resumed, 1);
        assert_eq!(r.first_error.as_deref(), Some("early"));
        assert_eq!(r.rate, 0.5);
        assert_eq!(r.client_cpu_us_per_handshake, 1000.0);
    }
}
