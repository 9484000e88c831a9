//! A protobuf reader for the few OTLP messages the test checks, written from the
//! opentelemetry-proto `.proto` field numbers, independent of the encoder.

use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Any {
    Str(String),
    Bool(bool),
    Int(i64),
    None,
}

pub(crate) struct Request {
    pub resource_logs: Vec<ResourceLogs>,
}
pub(crate) struct ResourceLogs {
    resource: HashMap<String, Any>,
    pub records: Vec<Record>,
}
pub(crate) struct Record {
    pub severity_number: u64,
    pub body: String,
    pub attrs: HashMap<String, Any>,
}

impl ResourceLogs {
    pub(crate) fn resource_attrs(&self) -> HashMap<String, String> {
        self.resource
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    match v {
                        Any::Str(s) => s.clone(),
                        o => format!("{o:?}"),
                    },
                )
            })
            .collect()
    }
}

fn varint(b: &[u8], i: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let byte = b[*i];
        *i += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return v;
        }
        shift += 7;
    }
}

/// (field, wire value): varints as Ok(u64), length-delimited as Err(bytes).
fn fields(b: &[u8]) -> Vec<(u64, Result<u64, &[u8]>)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let key = varint(b, &mut i);
        match key & 7 {
            0 => out.push((key >> 3, Ok(varint(b, &mut i)))),
            1 => {
                out.push((
                    key >> 3,
                    Ok(u64::from_le_bytes(b[i..i + 8].try_into().unwrap())),
                ));
                i += 8;
            }
            2 => {
                let n = varint(b, &mut i) as usize;
                out.push((key >> 3, Err(&b[i..i + n])));
                i += n;
            }
            w => panic!("wire type {w}"),
        }
    }
    out
}

fn bytes(v: Result<u64, &[u8]>) -> &[u8] {
    v.unwrap_err()
}

fn any(b: &[u8]) -> Any {
    match fields(b).first() {
        Some((1, v)) => Any::Str(String::from_utf8(bytes(*v).to_vec()).unwrap()),
        Some((2, Ok(v))) => Any::Bool(*v != 0),
        Some((3, Ok(v))) => Any::Int(*v as i64),
        _ => Any::None,
    }
}

fn kv(b: &[u8]) -> (String, Any) {
    let mut k = String::new();
    let mut v = Any::None;
    for (f, x) in fields(b) {
        match f {
            1 => k = String::from_utf8(bytes(x).to_vec()).unwrap(),
            2 => v = any(bytes(x)),
            _ => {}
        }
    }
    (k, v)
}

impl Request {
    pub(crate) fn decode(b: &[u8]) -> Self {
        let mut resource_logs = Vec::new();
        for (f, rl) in fields(b) {
            assert_eq!(f, 1);
            let mut resource = HashMap::new();
            let mut records = Vec::new();
            for (f, x) in fields(bytes(rl)) {
                match f {
                    1 => {
                        for (f, a) in fields(bytes(x)) {
                            if f == 1 {
                                let (k, v) = kv(bytes(a));
                                resource.insert(k, v);
                            }
                        }
                    }
                    2 => {
                        for (f, lr) in fields(bytes(x)) {
                            if f != 2 {
                                continue;
                            }
                            let mut r = Record {
                                severity_number: 0,
                                body: String::new(),
                                attrs: HashMap::new(),
                            };
                            for (f, v) in fields(bytes(lr)) {
                                match f {
                                    2 => r.severity_number = v.unwrap(),
                                    5 => {
                                        if let Any::Str(s) = any(bytes(v)) {
                                            r.body = s;
                                        }
                                    }
                                    6 => {
                                        let (k, v) = kv(bytes(v));
                                        r.attrs.insert(k, v);
                                    }
                                    _ => {}
                                }
                            }
                            records.push(r);
                        }
                    }
                    _ => {}
                }
            }
            resource_logs.push(ResourceLogs { resource, records });
        }
        Self { resource_logs }
    }
}
