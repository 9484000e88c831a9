//! RFC 5424 messages (`<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID - - MSG`) and their RFC 6587
//! octet-counted framing, for the syslog and logplex drains.

use std::cell::RefCell;

use crate::format::rfc3339;
use crate::record::{Level, Record, Source};

/// Logplex splits lines over this many bytes of MSG into several messages.
pub const MAX_MSG: usize = 10_000;

/// A header under construction, kept per thread: this runs once per line per drain, and
/// consecutive lines mostly share everything after the timestamp.
#[derive(Default)]
struct Head {
    /// The header of the line at hand.
    buf: String,
    /// ` HOSTNAME APP-NAME PROCID - - ` and what it was built from.
    tail: String,
    host: String,
    app: String,
    source: Option<Source>,
}

thread_local! {
    static HEAD: RefCell<Head> = RefCell::new(Head::default());
}

/// Runs `f` with this thread's header buffer (a fresh one if it is in use).
fn with_head<T>(f: impl FnOnce(&mut Head) -> T) -> T {
    HEAD.with(|cell| match cell.try_borrow_mut() {
        Ok(mut head) => f(&mut head),
        Err(_) => f(&mut Head::default()),
    })
}

/// Appends `r` as one or more messages, each `LEN SP MSG` (octet counting), its text cut
/// into pieces of at most `max_msg` bytes (on character boundaries).
pub fn framed(r: &Record, hostname: &str, max_msg: usize, out: &mut Vec<u8>) -> usize {
    with_head(|head| {
        let head = header(r, hostname, head);
        let mut n = 0;
        let mut digits = itoa::Buffer::new();
        for piece in pieces(r.text(), max_msg) {
            out.extend_from_slice(digits.format(head.len() + piece.len()).as_bytes());
            out.push(b' ');
            out.extend_from_slice(head.as_bytes());
            out.extend_from_slice(piece.as_bytes());
            n += 1;
        }
        n
    })
}

/// How many messages `r` becomes at `max_msg`.
pub fn count(r: &Record, max_msg: usize) -> usize {
    r.text().len().div_ceil(max_msg.max(1)).max(1)
}

/// One unframed message (for UDP: one per datagram).
pub fn message(r: &Record, hostname: &str, out: &mut Vec<u8>) {
    with_head(|head| {
        out.extend_from_slice(header(r, hostname, head).as_bytes());
        out.extend_from_slice(r.text().as_bytes());
    });
}

/// `<PRI>1 ` of a level: facility local7 (23, as Heroku's router lines use) times 8 plus
/// the level's severity (RFC 5424 §6.2.1).
fn pri(level: Level) -> &'static str {
    match level {
        Level::Error => "<187>1 ",
        Level::Warning => "<188>1 ",
        Level::Info => "<190>1 ",
        Level::Debug => "<191>1 ",
    }
}

/// `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID - - ` (with the space before MSG), built in
/// `head`. No `fmt`: it costs more than the rest of the header.
fn header<'h>(r: &Record, hostname: &str, head: &'h mut Head) -> &'h str {
    let app = if r.app().is_empty() {
        "spaced"
    } else {
        r.app()
    };
    if head.source != Some(r.source) || head.app != app || head.host != hostname {
        head.tail.clear();
        head.tail.push(' ');
        push_name(hostname, 255, &mut head.tail);
        head.tail.push(' ');
        push_name(app, 48, &mut head.tail);
        head.tail.push(' ');
        head.tail.push_str(r.source.as_str());
        head.tail.push_str(" - - ");
        head.host.clear();
        head.host.push_str(hostname);
        head.app.clear();
        head.app.push_str(app);
        head.source = Some(r.source);
    }
    head.buf.clear();
    head.buf.push_str(pri(r.level));
    rfc3339(r.time, &mut head.buf);
    head.buf.push_str(&head.tail);
    &head.buf
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
    use crate::Kind;

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
    fn pri_is_local7_and_the_severity() {
        for l in [Level::Error, Level::Warning, Level::Info, Level::Debug] {
            let want = format!("<{}>1 ", 23 * 8 + u16::from(l.severity()));
            assert_eq!(pri(l), want);
        }
    }

    #[test]
    fn the_cached_tail_follows_host_app_and_source() {
        let mut out = Vec::new();
        let lines = [
            ("demo", "api", Source::Router, " demo api router - - "),
            ("demo", "api", Source::Router, " demo api router - - "),
            ("demo", "web", Source::Router, " demo web router - - "),
            ("demo", "web", Source::Egress, " demo web egress - - "),
            (
                "other space",
                "web",
                Source::Egress,
                " otherspace web egress - - ",
            ),
            ("", "", Source::Spaced, " - spaced spaced - - "),
        ];
        for (host, app, source, want) in lines {
            out.clear();
            let r = Record::new(Level::Info, source, Kind::Logfmt, app, "x=1");
            framed(&r, host, MAX_MSG, &mut out);
            let s = String::from_utf8(out.clone()).unwrap();
            assert!(s.ends_with(&format!("Z{want}x=1")), "{s}");
        }
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
