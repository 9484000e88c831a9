//! Secrets read from files (`[app] egress_token_file`): how Kubernetes Secrets and
//! systemd credentials hand a token over, so it need not sit in the main file (often a
//! ConfigMap). The file is read like `trusted_file` — relative to the config, watched, its
//! bytes part of the reload digest — and no error ever quotes what it holds.

use toml::Spanned;

use super::Cx;
use crate::error::{ErrorKind, os_reason};

const KEY: &str = "app.egress_token_file";

impl Cx<'_> {
    /// The token in `file`, its trailing line break trimmed (`echo token > file` and
    /// `kubectl create secret --from-file` both may leave one). `inline` is the app's
    /// `egress_token`: both given is an error, at the file key.
    pub(super) fn token_file(
        &mut self,
        inline: Option<&Spanned<String>>,
        file: &Spanned<String>,
    ) -> Option<String> {
        let path = self.source.dir.join(file.get_ref());
        // Watched even when unreadable now: creating it later is a reason to reload.
        self.files.push(path.clone());
        if inline.is_some() {
            self.push(
                file.span(),
                ErrorKind::SecretTwice {
                    key: "app.egress_token",
                },
            );
            return None;
        }
        let problem = |problem: String| ErrorKind::SecretFile {
            key: KEY,
            path: path.display().to_string(),
            problem,
        };
        let bytes = match (self.source.read)(&path) {
            Ok(b) => b,
            Err(e) => {
                let kind = problem(format!("cannot read: {}", os_reason(&e)));
                self.push(file.span(), kind);
                return None;
            }
        };
        let token = match std::str::from_utf8(trim_line_break(&bytes)) {
            Ok(t) => t,
            Err(_) => {
                let kind = problem("the token is not UTF-8 text".into());
                self.push(file.span(), kind);
                return None;
            }
        };
        // The same rule as an inline token (a Basic-auth password): the checks name the
        // problem, never the bytes, which would put the secret in logs and `/config`.
        let why = if token.is_empty() {
            Some("the file is empty: expected the token")
        } else if token.bytes().any(|b| b.is_ascii_control()) {
            Some("the token holds a control character (only one trailing line break is trimmed)")
        } else {
            None
        };
        if let Some(why) = why {
            let kind = problem(why.into());
            self.push(file.span(), kind);
            return None;
        }
        Some(token.to_string())
    }
}

/// Drops one trailing `\n` or `\r\n`.
fn trim_line_break(bytes: &[u8]) -> &[u8] {
    match bytes.strip_suffix(b"\n") {
        Some(line) => line.strip_suffix(b"\r").unwrap_or(line),
        None => bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::trim_line_break;

    #[test]
    fn one_line_break_is_trimmed() {
        assert_eq!(trim_line_break(b"tok\n"), b"tok");
        assert_eq!(trim_line_break(b"tok\r\n"), b"tok");
        assert_eq!(trim_line_break(b"tok"), b"tok");
        assert_eq!(trim_line_break(b"tok\n\n"), b"tok\n");
        assert_eq!(trim_line_break(b""), b"");
        assert_eq!(trim_line_break(b"tok\r"), b"tok\r");
    }
}
