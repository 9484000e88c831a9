//! Encodings done off the hot path, by the stdout writer and the drains: RFC 3339
//! timestamps, the logfmt line read back into fields, and JSON lines.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::record::{Kind, Record};

/// Appends `2026-12-07T21:17:08.123456Z` (UTC, microseconds). The part up to the seconds
/// is cached per thread: it changes once a second, and `fmt` integer padding would cost
/// more than the rest of a stdout line's encoding.
pub fn rfc3339(t: SystemTime, out: &mut String) {
    thread_local! {
        static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    SECOND.with(|c| match c.try_borrow_mut() {
        Ok(mut c) => {
            if c.0 != secs {
                c.1.clear();
                seconds(secs, &mut c.1);
                c.0 = secs;
            }
            out.push_str(&c.1);
        }
        Err(_) => seconds(secs, out),
    });
    out.push('.');
    let mut buf = itoa::Buffer::new();
    let micros = buf.format(d.subsec_micros());
    for _ in micros.len()..6 {
        out.push('0');
    }
    out.push_str(micros);
    out.push('Z');
}

/// `2026-11-28T23:28:03Z`: seconds precision, UTC (`/config`'s `loaded_at`, a fleet
/// instance's `applied_at`).
pub fn rfc3339_seconds(t: SystemTime) -> String {
    let mut out = String::with_capacity(20);
    seconds(
        t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        &mut out,
    );
    out.push('Z');
    out
}

/// `2026-12-07T21:17:08` (no fraction, no zone).
fn seconds(secs: u64, out: &mut String) {
    let (y, m, day) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    let _ = write!(
        out,
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    );
}

/// Days since 1970-01-01 → (year, month, day), Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A field's value, typed the way JSON and OTLP want it; text borrows from the line
/// unless it had escapes to undo.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    /// No value (`dyno=`).
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// Digits, or an `ms` duration (`service=12ms` → 12).
    Int(i64),
    /// Anything else, unescaped.
    Str(Cow<'a, str>),
}

/// Fields whose values stay text even when they look like numbers: ids and addresses. A
/// `match`, not a list searched: it runs for every field of every JSON or OTLP line, and
/// the compiler dispatches on the length before comparing any bytes.
fn text_key(key: &str) -> bool {
    matches!(
        key,
        "request_id"
            | "host"
            | "path"
            | "fwd"
            | "desc"
            | "method"
            | "dyno"
            | "client"
            | "egress_ip"
            | "dest"
            | "code"
            | "app"
    )
}

/// Reads a logfmt line back into `(key, value)` pairs: `key=bare` or `key="quoted \" \\ \xNN"`.
/// Anything that is not `key=…` is skipped, so a hostile value never breaks the reading.
pub fn fields(line: &str) -> Vec<(&str, Value<'_>)> {
    let b = line.as_bytes();
    let mut out = Vec::with_capacity(16);
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
        let key_start = i;
        while i < b.len() && b[i] != b'=' && b[i] != b' ' {
            i += 1;
        }
        if i >= b.len() || b[i] != b'=' {
            continue;
        }
        let key = &line[key_start..i];
        i += 1;
        let (raw, quoted) = if i < b.len() && b[i] == b'"' {
            i += 1;
            let start = i;
            while i < b.len() && b[i] != b'"' && b[i] != b'\\' {
                i += 1;
            }
            if i >= b.len() || b[i] == b'"' {
                // No escape: the value as it stands (quotes are ASCII, so both ends are
                // character boundaries).
                let v = &line[start..i];
                i += 1;
                (Cow::Borrowed(v), true)
            } else {
                // Bytes, not `str` slices: a hostile value may put an escape before a
                // multi-byte character, and no index here may land inside one.
                let mut v = b[start..i].to_vec();
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' && i + 1 < b.len() {
                        let hex = b
                            .get(i + 2..i + 4)
                            .and_then(|h| std::str::from_utf8(h).ok())
                            .and_then(|h| u8::from_str_radix(h, 16).ok());
                        match (b[i + 1], hex) {
                            (b'x', Some(byte)) => {
                                v.push(byte);
                                i += 4;
                            }
                            (c, _) => {
                                v.push(c);
                                i += 2;
                            }
                        }
                    } else {
                        v.push(b[i]);
                        i += 1;
                    }
                }
                i += 1;
                (Cow::Owned(String::from_utf8_lossy(&v).into_owned()), true)
            }
        } else {
            let start = i;
            while i < b.len() && b[i] != b' ' {
                i += 1;
            }
            (Cow::Borrowed(&line[start..i]), false)
        };
        if !key.is_empty() {
            out.push((key, typed(key, raw, quoted)));
        }
    }
    out
}

fn typed<'a>(key: &str, raw: Cow<'a, str>, quoted: bool) -> Value<'a> {
    if quoted || text_key(key) {
        return if raw.is_empty() && !quoted {
            Value::Null
        } else {
            Value::Str(raw)
        };
    }
    if raw.is_empty() {
        return Value::Null;
    }
    let digits = |s: &str| !s.is_empty() && s.len() <= 18 && s.bytes().all(|c| c.is_ascii_digit());
    if digits(&raw) {
        return raw.parse().map_or(Value::Str(raw), Value::Int);
    }
    if let Some(ms) = raw.strip_suffix("ms")
        && digits(ms)
    {
        return ms.parse().map_or(Value::Str(raw), Value::Int);
    }
    match &*raw {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => Value::Str(raw),
    }
}

/// Appends one JSON object (no newline): `time`, `level`, `source`, `app`, then the line's
/// fields (logfmt lines) or `msg` (other lines).
pub fn json(r: &Record, out: &mut String) {
    out.push_str("{\"time\":\"");
    rfc3339(r.time, out);
    out.push_str("\",\"level\":\"");
    out.push_str(r.level.as_str());
    out.push_str("\",\"source\":\"");
    out.push_str(r.source.as_str());
    out.push_str("\",\"app\":");
    if r.app().is_empty() {
        out.push_str("null");
    } else {
        json_str(r.app(), out);
    }
    match r.kind {
        Kind::Logfmt => {
            for (k, v) in fields(r.text()) {
                if matches!(k, "time" | "level" | "source" | "app") {
                    continue;
                }
                out.push(',');
                json_str(k, out);
                out.push(':');
                match v {
                    Value::Null => out.push_str("null"),
                    Value::Bool(b) => out.push_str(if b { "true" } else { "false" }),
                    Value::Int(n) => out.push_str(itoa::Buffer::new().format(n)),
                    Value::Str(s) => json_str(&s, out),
                }
            }
        }
        Kind::Text => {
            out.push_str(",\"msg\":");
            json_str(r.text(), out);
        }
    }
    out.push('}');
}

fn json_str(s: &str, out: &mut String) {
    // Nearly every value needs no escaping: then it is copied as it is.
    if !s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        out.push('"');
        out.push_str(s);
        out.push('"');
        return;
    }
    // serde_json's escaping: quotes, backslashes and control characters.
    let _ = serde_json::to_writer(StringWriter(out), s);
}

struct StringWriter<'a>(&'a mut String);

impl std::io::Write for StringWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        // serde_json writes valid UTF-8 pieces of a string it was given as &str.
        self.0.push_str(&String::from_utf8_lossy(buf));
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{Level, Source};

    #[test]
    fn timestamps_to_the_second() {
        assert_eq!(rfc3339_seconds(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_795_908_483);
        assert_eq!(rfc3339_seconds(t), "2026-11-28T23:28:03Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339_seconds(leap), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn timestamps() {
        let mut s = String::new();
        rfc3339(
            UNIX_EPOCH + Duration::from_micros(1_795_908_483_000_123),
            &mut s,
        );
        assert_eq!(s, "2026-11-28T23:28:03.000123Z");
        // The cached second, then the next one.
        s.clear();
        rfc3339(
            UNIX_EPOCH + Duration::from_micros(1_795_908_483_999_999),
            &mut s,
        );
        assert_eq!(s, "2026-11-28T23:28:03.999999Z");
        s.clear();
        rfc3339(
            UNIX_EPOCH + Duration::from_micros(1_795_908_484_000_000),
            &mut s,
        );
        assert_eq!(s, "2026-11-28T23:28:04.000000Z");
    }

    #[test]
    fn router_line_as_json() {
        let line = "at=error code=H12 desc=\"Request \\\"x\\\" timeout\" method=GET path=\"/a?b=1\" host=api.example.com request_id=123 fwd=\"203.0.113.9\" dyno= connect= service=30000ms status=503 bytes=0 protocol=http1.1 tls=false tls_version=unknown";
        let r = Record::new(Level::Error, Source::Router, Kind::Logfmt, "api", line);
        let mut s = String::new();
        json(&r, &mut s);
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["level"], "error");
        assert_eq!(v["source"], "router");
        assert_eq!(v["app"], "api");
        assert_eq!(v["at"], "error");
        assert_eq!(v["desc"], "Request \"x\" timeout");
        assert_eq!(v["request_id"], "123");
        assert_eq!(v["service"], 30000);
        assert_eq!(v["status"], 503);
        assert_eq!(v["connect"], serde_json::Value::Null);
        assert_eq!(v["tls"], false);
        assert_eq!(v["path"], "/a?b=1");
    }

    #[test]
    fn hostile_text_stays_one_object() {
        let r = Record::new(
            Level::Info,
            Source::Spaced,
            Kind::Text,
            "",
            "a \"b\"\n\u{1} c",
        );
        let mut s = String::new();
        json(&r, &mut s);
        assert!(!s.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["msg"], "a \"b\"\n\u{1} c");
        assert!(fields("=x \"y=1 k=\"unterminated").len() <= 2);
        // Escapes before multi-byte characters, truncated escapes, stray quotes.
        for hostile in [
            "k=\"\\é\" x=1",
            "k=\"\\x\u{e9}\"",
            "k=\"\\x4",
            "k=\"\\",
            "é=é \"=\" ==\"\"\"",
        ] {
            let _ = fields(hostile);
        }
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..2000 {
            let bytes: Vec<u8> = (0..rng.usize(0..40))
                .map(|_| *rng.choice(b"k=\" \\x41\xc3\xa9z").unwrap_or(&b'k'))
                .collect();
            let _ = fields(&String::from_utf8_lossy(&bytes));
        }
    }
}
