//! The value rules, as the Python vCon Server's ingest model applies them.
//!
//! Kept together so the refusals are easy to compare with the reference:
//! - a party `tel` matches `^[+\d(][\d\s\-().+xX#*]{4,}$`;
//! - a dialog `duration` is a number ≥ 0;
//! - a dialog `url` has a scheme: `scheme://...`;
//! - a dialog `mimetype` (or `mediatype`) is `type/subtype`, optionally with parameters;
//! - a dialog `alg` is one of the signature algorithms in [`ALGORITHMS`];
//! - a dialog's `parties` are indices (or lists of indices) into the vCon's `parties`.

use std::sync::OnceLock;

use regex::Regex;

/// The `alg` values a dialog may carry.
pub const ALGORITHMS: &[&str] = &[
    "SHA-256", "SHA-384", "SHA-512", "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256",
    "ES384", "ES512", "PS256", "PS384", "PS512",
];

fn compiled(cell: &'static OnceLock<Option<Regex>>, pattern: &str) -> Option<&'static Regex> {
    cell.get_or_init(|| Regex::new(pattern).ok()).as_ref()
}

/// Whether `tel` is a telephone number the Python server accepts.
pub fn is_tel(tel: &str) -> bool {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    compiled(&RE, r"^[+\d(][\d\s\-().+xX#*]{4,}$").is_some_and(|re| re.is_match(tel))
}

/// Whether `url` has a `scheme://` prefix.
pub fn is_url(url: &str) -> bool {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    compiled(&RE, r"^[A-Za-z][A-Za-z0-9+.\-]*://\S+$").is_some_and(|re| re.is_match(url))
}

/// Whether `mediatype` is `type/subtype` (RFC 6838 tokens), with optional `; parameters`.
pub fn is_mediatype(mediatype: &str) -> bool {
    static RE: OnceLock<Option<Regex>> = OnceLock::new();
    compiled(
        &RE,
        r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+\-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+\-]*(\s*;.*)?$",
    )
    .is_some_and(|re| re.is_match(mediatype))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tel() {
        assert!(is_tel("+15551234567"));
        assert!(is_tel("(555) 123-4567 x89"));
        assert!(!is_tel("call me"));
        assert!(!is_tel("+1"));
    }

    #[test]
    fn url() {
        assert!(is_url("s3://bucket/recording.wav"));
        assert!(is_url("https://example.com/a?b=c"));
        assert!(!is_url("not-a-url"));
        assert!(!is_url("not_a_valid_url_$$##"));
    }

    #[test]
    fn mediatype() {
        assert!(is_mediatype("audio/x-wav"));
        assert!(is_mediatype("text/plain; charset=utf-8"));
        assert!(is_mediatype("application/vnd.foo+json"));
        assert!(!is_mediatype("not a valid mimetype!"));
        assert!(!is_mediatype("audio"));
    }
}
