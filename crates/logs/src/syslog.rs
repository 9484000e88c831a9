//! RFC 5424 messages (`<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID - - MSG`) and their RFC 6587
//! octet-counted framing, for the syslog and logplex drains.

use std::fmt::Write as _;

use crate::Record;
use crate::format::rfc3339;

/// Facility local7 (23), as Heroku's router lines use.
const LOCAL7: u8 = 23;

/// Logplex splits lines over this many bytes of MSG into several messages.
pub const MAX_MSG: usize = 10_000;

/// Appends `r` as one or more messages, each `LEN SP MSG` (octet counting), its text cut
/// into pieces of at most `max_msg` bytes (on character boundaries).
pub fn framed(r: &Record, hostname: &str, max_msg: usize, out: &mut Vec<u8>) -> usize {
    let mut n = 0;
    let mut head = String::with_capacity(96);
    header(r, hostname, &mut head);
    for piece in pieces(r.text(), max_msg) {
        let len = head.len() + piece.len();
        out.extend_from_slice(len.to_string().as_bytes());
        out.push(b' ');
        out.extend_from_slice(head.as_bytes());
        out.extend_from_slice(piece.as_bytes());
        n += 1;
    }
    n
}

/// How many messages `r` becomes at `max_msg`.
pub fn count(r: &Record, max_msg: usize) -> usize {
    r.text().len().div_ceil(max_msg.max(1)).max(1)
}

/// One unframed message (for UDP: one per datagram).
pub fn message(r: &Record, hostname: &str, out: &mut Vec<u8>) {
    let mut head = String::with_capacity(96);
    header(r, hostname, &mut head);
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(r.text().as_bytes());
}

/// `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID - - ` (with the space before MSG).
fn header(r: &Record, hostname: &str, out: &mut String) {
    let pri = u16::from(LOCAL7) * 8 + u16::from(r.level.severity());
    let _ = write!(out, "<{pri}>1 ");
    rfc3339(r.time, out);
    out.push(' ');
    push_name(hostname, 255, out);
    out.push(' ');
    push_name(
        if r.app().is_empty() {
            "spaced"
        } else {
            r.app()
        },
        48,
        out,
    );
    let _ = write!(out, " {} - - ", r.source.as_str());
}

/// A header field: printable ASCII, no spaces, bounded (RFC 5424 §6); `-` when empty.
fn push_name(s: &str, max: usize, out: &mut String) {
    let start = out.len();
    out.extend(s.chars().filter(|c| c.is_ascii_graphic()).take(max));
    if out.len() == start {
        out.push('-');
    }
}

fn pieces(text: &str, max: usize) -> impl Iterator<Item = &str> {
    let max = max.max(4);
    let mut rest = text;
    let mut first = true;
    std::iter::from_fn(move || {
        if rest.is_empty() && !first {
            return None;
        }
        first = false;
        let mut cut = rest.len().min(max);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (a, b) = rest.split_at(cut);
        rest = b;
        Some(a)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Kind, Level, Source};

    #[test]
    fn framing_and_header() {
        let r = Record::new(
            Level::Warning,
            Source::Router,
            Kind::Logfmt,
            "api",
            "at=warning x=1",
        );
        let mut out = Vec::new();
        assert_eq!(framed(&r, "demo", MAX_MSG, &mut out), 1);
        let s = String::from_utf8(out).unwrap();
        let (len, msg) = s.split_once(' ').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), msg.len());
        assert!(msg.starts_with("<188>1 "), "{msg}");
        assert!(
            msg.ends_with("Z demo api router - - at=warning x=1"),
            "{msg}"
        );
    }

    #[test]
    fn long_lines_are_split() {
        let text = "é".repeat(12_000);
        let r = Record::new(Level::Info, Source::Spaced, Kind::Text, "", &text);
        let mut out = Vec::new();
        assert_eq!(framed(&r, "", MAX_MSG, &mut out), 3);
        assert_eq!(count(&r, MAX_MSG), 3);
        let s = String::from_utf8(out).unwrap();
        assert!(s.contains(" - spaced spaced - - "));
    }
}
