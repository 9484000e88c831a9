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
        let Ok(token) = std::str::from_utf8(trim_line_break(&bytes)) else {
            let kind = problem("the token is not UTF-8 text".into());
            self.push(file.span(), kind);
            return None;
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
    use std::path::Path;

    use super::trim_line_break;
    use crate::{Source, parse};

    const SECRET: &str = "hunter2-\u{7}-s3cret";

    /// Parses `text` in `/cfg` where `secrets/api.token` holds `token` (absent: `None`).
    fn parse_with(text: &str, token: Option<&[u8]>) -> Result<Option<String>, String> {
        let token = token.map(<[u8]>::to_vec);
        let read = move |p: &Path| match (&token, p == Path::new("/cfg/secrets/api.token")) {
            (Some(t), true) => Ok(t.clone()),
            _ => Err(std::io::ErrorKind::NotFound.into()),
        };
        let source = Source {
            name: "t.toml",
            dir: Path::new("/cfg"),
            read: &read,
        };
        parse(text.as_bytes(), &source)
            .map(|p| p.apps[0].egress_token.clone())
            .map_err(|e| e.to_string())
    }

    const FILE: &str = "[space]\nname = \"s\"\n[[app]]\nname = \"api\"\negress_token_file = \"secrets/api.token\"\n";

    #[test]
    fn the_token_comes_from_the_file_without_its_line_break() {
        assert_eq!(parse_with(FILE, Some(b"tok-1\n")), Ok(Some("tok-1".into())));
        assert_eq!(parse_with(FILE, Some(b"tok-1")), Ok(Some("tok-1".into())));
    }

    #[test]
    fn unusable_files_are_located_errors_that_never_quote_the_token() {
        assert_eq!(
            parse_with(FILE, None),
            Err("t.toml:5:21: app.egress_token_file \"/cfg/secrets/api.token\": cannot read: entity not found".into())
        );
        assert_eq!(
            parse_with(FILE, Some(b"\n")),
            Err("t.toml:5:21: app.egress_token_file \"/cfg/secrets/api.token\": the file is empty: expected the token".into())
        );
        let err = parse_with(FILE, Some(SECRET.as_bytes())).unwrap_err();
        assert!(err.starts_with("t.toml:5:21: "), "{err}");
        assert!(err.contains("control character"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        let err = parse_with(FILE, Some(b"hunter2\xff")).unwrap_err();
        assert!(
            err.contains("not UTF-8") && !err.contains("hunter2"),
            "{err}"
        );
    }

    #[test]
    fn inline_and_file_together_are_an_error() {
        let both = FILE.replace(
            "egress_token_file",
            "egress_token = \"x\"\negress_token_file",
        );
        assert_eq!(
            parse_with(&both, Some(b"tok")),
            Err(
                "t.toml:6:21: app.egress_token and app.egress_token_file are both given: keep one"
                    .into()
            )
        );
    }

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
