//! `[logging]`, `[[drain]]` and `[app] drains`: defaults, then the file's values.

use toml::Spanned;

use super::Cx;
use crate::error::ErrorKind;
use crate::logging::{Drain, DrainUrl, LogFormat, Logging};
use crate::raw::RawLogging;

/// More lines than this queued per sink is memory, not buffering (a line is ~300 bytes).
const MAX_BUFFER: i64 = 10_000_000;

impl Cx<'_> {
    pub(super) fn logging(&mut self, raw: Option<RawLogging>) -> Logging {
        let mut out = Logging::default();
        let Some(raw) = raw else { return out };
        match raw.format.as_ref().map(|f| f.get_ref().as_str()) {
            None | Some("logfmt") => {}
            Some("json") => out.format = LogFormat::Json,
            Some(other) => {
                let span = raw.format.as_ref().map_or(0..0, Spanned::span);
                self.push(
                    span,
                    ErrorKind::Invalid {
                        key: "logging.format",
                        value: other.into(),
                        expected: "\"logfmt\" or \"json\"",
                    },
                );
            }
        }
        out.timestamps = raw.timestamps.unwrap_or(out.timestamps);
        out.stdout = raw.stdout.unwrap_or(out.stdout);
        if let Some(b) = &raw.buffer {
            match usize::try_from(*b.get_ref()) {
                Ok(n) if n >= 1 && *b.get_ref() <= MAX_BUFFER => out.buffer = n,
                _ => self.push(
                    b.span(),
                    ErrorKind::Invalid {
                        key: "logging.buffer",
                        value: b.get_ref().to_string(),
                        expected: "a number of lines from 1 to 10000000",
                    },
                ),
            }
        }
        out
    }

    /// One drain URL (and its `ca` file, read now so a reload sees a replaced file).
    pub(crate) fn drain(
        &mut self,
        url: &Spanned<String>,
        ca: Option<&Spanned<String>>,
    ) -> Option<Drain> {
        let parsed = match DrainUrl::parse(url.get_ref()) {
            Ok(u) => u,
            Err(reason) => {
                self.push(
                    url.span(),
                    ErrorKind::BadDrainUrl {
                        url: redact(url.get_ref()),
                        reason,
                    },
                );
                return None;
            }
        };
        let ca = match ca {
            None => None,
            Some(file) => {
                let path = self.source.dir.join(file.get_ref());
                self.files.push(path.clone());
                match (self.source.read)(&path) {
                    Ok(b) => Some(b),
                    Err(e) => {
                        self.push(
                            file.span(),
                            ErrorKind::Read {
                                reason: format!("{}: {e}", path.display()),
                            },
                        );
                        return None;
                    }
                }
            }
        };
        Some(Drain { url: parsed, ca })
    }
}

/// A URL that did not parse, its password (between `:` and `@` after `//`) hidden.
fn redact(text: &str) -> String {
    let Some(start) = text.find("://").map(|i| i + 3) else {
        return text.to_string();
    };
    let rest = &text[start..];
    let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..auth_end].rfind('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            let user = userinfo.split(':').next().unwrap_or("");
            let hidden = if userinfo.contains(':') { ":***" } else { "" };
            format!("{}{user}{hidden}{}", &text[..start], &rest[at..])
        }
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redaction_of_unparsed_urls() {
        assert_eq!(redact("ftp://u:pw@h:1/x"), "ftp://u:***@h:1/x");
        assert_eq!(redact("ftp://h/x@y"), "ftp://h/x@y");
        assert_eq!(redact("nope"), "nope");
    }
}
