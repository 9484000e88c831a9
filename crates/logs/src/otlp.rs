//! OTLP/HTTP logs, protobuf (`ExportLogsServiceRequest` of opentelemetry-proto's
//! `collector/logs/v1`), encoded by hand: the drain needs a handful of fields of a stable
//! wire format, and the encoding runs in the drain task, so generated types and their
//! dependency tree would buy nothing the hot path can feel.

use std::time::UNIX_EPOCH;

use crate::format::{Value, fields};
use crate::record::{Kind, Level, Record};

/// Encodes `batch` as one request: one ResourceLogs per run of lines of the same app
/// (`service.name`, `spaced.space`, `spaced.app` resource attributes), order kept.
pub fn encode(batch: &[std::sync::Arc<Record>], space: &str, out: &mut Vec<u8>) {
    let mut i = 0;
    while i < batch.len() {
        let app = batch[i].app();
        let mut j = i;
        while j < batch.len() && batch[j].app() == app {
            j += 1;
        }
        let rl = resource_logs(&batch[i..j], space, app);
        field_bytes(out, 1, &rl);
        i = j;
    }
}

fn resource_logs(lines: &[std::sync::Arc<Record>], space: &str, app: &str) -> Vec<u8> {
    let mut resource = Vec::new();
    kv(
        &mut resource,
        1,
        "service.name",
        &Value::Str("spaced".into()),
    );
    kv(&mut resource, 1, "spaced.space", &Value::Str(space.into()));
    let app_value = if app.is_empty() {
        Value::Str("spaced".into())
    } else {
        Value::Str(app.into())
    };
    kv(&mut resource, 1, "spaced.app", &app_value);
    let mut scope_logs = Vec::new();
    let mut scope = Vec::new();
    field_str(&mut scope, 1, "spaced");
    field_bytes(&mut scope_logs, 1, &scope);
    for r in lines {
        field_bytes(&mut scope_logs, 2, &log_record(r));
    }
    let mut rl = Vec::new();
    field_bytes(&mut rl, 1, &resource);
    field_bytes(&mut rl, 2, &scope_logs);
    rl
}

fn log_record(r: &Record) -> Vec<u8> {
    let mut out = Vec::with_capacity(r.text().len() * 2 + 64);
    let nanos = r
        .time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    // time_unix_nano (1) and observed_time_unix_nano (11): fixed64.
    for tag in [1u32, 11] {
        key(&mut out, tag, 1);
        out.extend_from_slice(&nanos.to_le_bytes());
    }
    let (number, text) = match r.level {
        Level::Error => (17, "ERROR"),
        Level::Warning => (13, "WARN"),
        Level::Info => (9, "INFO"),
        Level::Debug => (5, "DEBUG"),
    };
    key(&mut out, 2, 0);
    varint(&mut out, number);
    field_str(&mut out, 3, text);
    let mut body = Vec::new();
    any_value(&mut body, &Value::Str(r.text().into()));
    field_bytes(&mut out, 5, &body);
    kv(&mut out, 6, "source", &Value::Str(r.source.as_str().into()));
    if r.kind == Kind::Logfmt {
        for (k, v) in fields(r.text()) {
            kv(&mut out, 6, k, &v);
        }
    }
    out
}

/// A KeyValue message as field `tag`.
fn kv(out: &mut Vec<u8>, tag: u32, k: &str, v: &Value<'_>) {
    let mut m = Vec::with_capacity(k.len() + 16);
    field_str(&mut m, 1, k);
    let mut av = Vec::new();
    any_value(&mut av, v);
    field_bytes(&mut m, 2, &av);
    field_bytes(out, tag, &m);
}

/// AnyValue: string_value 1, bool_value 2, int_value 3; Null is an empty AnyValue.
fn any_value(out: &mut Vec<u8>, v: &Value<'_>) {
    match v {
        Value::Null => {}
        Value::Str(s) => field_str(out, 1, s),
        Value::Bool(b) => {
            key(out, 2, 0);
            varint(out, u64::from(*b));
        }
        Value::Int(n) => {
            key(out, 3, 0);
            // int64 is a two's complement varint.
            varint(out, *n as u64);
        }
    }
}

fn key(out: &mut Vec<u8>, tag: u32, wire: u8) {
    varint(out, (u64::from(tag) << 3) | u64::from(wire));
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn field_bytes(out: &mut Vec<u8>, tag: u32, b: &[u8]) {
    key(out, tag, 2);
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn field_str(out: &mut Vec<u8>, tag: u32, s: &str) {
    field_bytes(out, tag, s.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints() {
        let mut v = Vec::new();
        varint(&mut v, 300);
        assert_eq!(v, [0xac, 0x02]);
    }
}
