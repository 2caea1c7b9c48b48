//! Object keys: where a vCon and its lookup pointer live, in the Python `storage.s3` layout.
//!
//! ```text
//! [prefix/]YYYY/MM/DD/{uuid}.vcon     the document; the date is created_at in its own offset
//! [prefix/]lookup/{uuid}.txt          the pointer: its body is the date folder, `YYYY/MM/DD`
//! [prefix/]{uuid}.vcon                read only: where the Python module's `get` looked before
//!                                     it had pointers (its `save` never wrote there)
//! ```
//!
//! Every key is built here from validated parts only: a canonical uuid ([`CanonicalUuid`]), a
//! date folder of digits ([`DateFolder`]) and a prefix checked once at open ([`Layout::new`]).
//! Nothing read from a request or from the store reaches a key without passing those checks, so a
//! uuid cannot climb out of the prefix (`../`) or name another object.

use std::fmt;

use chrono::{DateTime, Datelike, FixedOffset};
use object_store::path::Path;

use crate::error::Error;

/// The extension of a document object, as the Python module writes it.
pub(crate) const OBJECT_EXTENSION: &str = "vcon";
/// The folder of the lookup pointers under the prefix.
pub(crate) const LOOKUP_FOLDER: &str = "lookup";
/// The extension of a lookup pointer.
pub(crate) const POINTER_EXTENSION: &str = "txt";

/// A uuid in canonical form (lowercase hexadecimal, hyphenated 8-4-4-4-12), the only form that
/// becomes part of a key.
///
/// The host already validates uuids; this second check keeps the plugin safe on its own (a
/// plugin may be driven by other hosts, or by a bug), because a uuid is spliced into a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CanonicalUuid<'a>(&'a str);

impl<'a> CanonicalUuid<'a> {
    /// Accepts exactly 36 characters: hyphens at 8, 13, 18 and 23, lowercase hex digits
    /// elsewhere. Anything else is refused with [`Error::BadUuid`].
    pub(crate) fn parse(text: &'a str) -> Result<Self, Error> {
        let ok = text.len() == 36
            && text.bytes().enumerate().all(|(i, b)| match i {
                8 | 13 | 18 | 23 => b == b'-',
                _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
            });
        if ok {
            Ok(Self(text))
        } else {
            Err(Error::BadUuid(text.to_owned()))
        }
    }

    /// The uuid's text.
    pub(crate) fn as_str(&self) -> &'a str {
        self.0
    }
}

impl fmt::Display for CanonicalUuid<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// The date folder a vCon is filed under, `YYYY/MM/DD`: also the body of its lookup pointer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct DateFolder {
    year: u16,
    month: u8,
    day: u8,
}

impl DateFolder {
    /// The folder for `created_at` in the offset it was written in (what the Python module does
    /// with `datetime.fromisoformat(created_at)`: no conversion to UTC). Years outside
    /// 0000..=9999 have no four-digit folder and are refused.
    pub(crate) fn from_created_at(created_at: DateTime<FixedOffset>) -> Result<Self, Error> {
        let year = u16::try_from(created_at.year())
            .ok()
            .filter(|y| *y <= 9999)
            .ok_or_else(|| Error::DateOutOfRange(created_at.to_rfc3339()))?;
        // Month and day come from chrono, so they are 1..=12 and 1..=31.
        let (month, day) = (created_at.month(), created_at.day());
        Ok(Self {
            year,
            month: u8::try_from(month).unwrap_or(1),
            day: u8::try_from(day).unwrap_or(1),
        })
    }

    /// Parses a pointer body: exactly `YYYY/MM/DD` (surrounding white space is tolerated, as a
    /// pointer written by another tool may end with a newline), with a real month and day.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let bytes = text.as_bytes();
        let shape_ok = bytes.len() == 10
            && bytes[4] == b'/'
            && bytes[7] == b'/'
            && bytes
                .iter()
                .enumerate()
                .all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit());
        if !shape_ok {
            return None;
        }
        let year: u16 = text.get(0..4)?.parse().ok()?;
        let month: u8 = text.get(5..7)?.parse().ok()?;
        let day: u8 = text.get(8..10)?.parse().ok()?;
        ((1..=12).contains(&month) && (1..=31).contains(&day)).then_some(Self { year, month, day })
    }
}

impl fmt::Display for DateFolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}/{:02}/{:02}", self.year, self.month, self.day)
    }
}

/// What a key found while listing is, by the layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Entry {
    /// `[prefix/]lookup/{uuid}.txt`.
    Pointer(String),
    /// `[prefix/]YYYY/MM/DD/{uuid}.vcon`.
    Object(String, DateFolder),
    /// `[prefix/]{uuid}.vcon`.
    Flat(String),
}

/// The keys of one storage: its prefix (possibly empty) and the fixed layout under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layout {
    /// The prefix without leading or trailing `/`; empty for the bucket's root.
    prefix: String,
    /// The same, parsed once: keys are built by appending parts to it.
    prefix_path: Path,
}

impl Layout {
    /// A layout under `prefix` (the Python module's `s3_path`). A trailing `/` is trimmed, as
    /// the Python module does. Refused, naming `option`: a leading `/` (the Python module would
    /// write keys starting with `/`, which object_store cannot address, so data would silently
    /// go elsewhere), empty segments (`a//b`), `.` and `..`, and control characters.
    pub(crate) fn new(prefix: &str, option: &str) -> Result<Self, Error> {
        let trimmed = prefix.trim_end_matches('/');
        if trimmed.is_empty() {
            return Ok(Self {
                prefix: String::new(),
                prefix_path: Path::default(),
            });
        }
        let refuse = |why: &str| {
            Err(Error::Options(format!(
                "invalid option {option}: {prefix:?} {why}; write the prefix as segments \
                 separated by `/`, e.g. `vcons` or `archive/vcons`"
            )))
        };
        if trimmed.starts_with('/') {
            return refuse(
                "starts with `/`: S3 keys would begin with an empty segment, which this \
                 plugin cannot address (drop the leading `/`)",
            );
        }
        for segment in trimmed.split('/') {
            if segment.is_empty() {
                return refuse("has an empty segment (`//`)");
            }
            if segment == "." || segment == ".." {
                return refuse("has a `.` or `..` segment");
            }
            if segment.chars().any(char::is_control) {
                return refuse("has a control character");
            }
        }
        // `parse` keeps the text as written (no percent-encoding), so the keys are byte for
        // byte the ones the Python module builds with the same `s3_path`.
        let prefix_path = Path::parse(trimmed)
            .map_err(|err| Error::Options(format!("invalid option {option}: {err}")))?;
        Ok(Self {
            prefix: trimmed.to_owned(),
            prefix_path,
        })
    }

    /// The prefix, empty for the bucket's root.
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    fn key(&self, rest: &str) -> Path {
        // Every part of `rest` is digits, lowercase hex, `-`, `.` and fixed words, none of which
        // `join` percent-encodes, so the key is the plain text the Python module uses.
        rest.split('/')
            .fold(self.prefix_path.clone(), |path, part| path.join(part))
    }

    /// `[prefix/]YYYY/MM/DD/{uuid}.vcon`.
    pub(crate) fn object(&self, uuid: CanonicalUuid<'_>, date: DateFolder) -> Path {
        self.key(&format!("{date}/{uuid}.{OBJECT_EXTENSION}"))
    }

    /// `[prefix/]{uuid}.vcon`: the fallback for a uuid without a pointer.
    pub(crate) fn flat(&self, uuid: CanonicalUuid<'_>) -> Path {
        self.key(&format!("{uuid}.{OBJECT_EXTENSION}"))
    }

    /// `[prefix/]lookup/{uuid}.txt`.
    pub(crate) fn pointer(&self, uuid: CanonicalUuid<'_>) -> Path {
        self.key(&format!("{LOOKUP_FOLDER}/{uuid}.{POINTER_EXTENSION}"))
    }

    /// `[prefix/]lookup`: what `list` and `count` walk.
    pub(crate) fn lookup_folder(&self) -> Path {
        self.key(LOOKUP_FOLDER)
    }

    /// The prefix as a path, `None` for the bucket's root: what `clear` and `provision` walk.
    pub(crate) fn root(&self) -> Option<Path> {
        (!self.prefix.is_empty()).then(|| self.prefix_path.clone())
    }

    /// What a listed key is, if it belongs to the layout; `None` for anything else under the
    /// prefix (other tools' objects are never touched).
    pub(crate) fn classify(&self, path: &Path) -> Option<Entry> {
        let text = path.as_ref();
        let rest = if self.prefix.is_empty() {
            text
        } else {
            text.strip_prefix(self.prefix.as_str())?.strip_prefix('/')?
        };
        if let Some(name) = rest
            .strip_prefix(LOOKUP_FOLDER)
            .and_then(|r| r.strip_prefix('/'))
        {
            let uuid = name.strip_suffix(POINTER_EXTENSION)?.strip_suffix('.')?;
            return CanonicalUuid::parse(uuid)
                .ok()
                .map(|u| Entry::Pointer(u.as_str().to_owned()));
        }
        if let Some(uuid) = rest
            .strip_suffix(OBJECT_EXTENSION)
            .and_then(|r| r.strip_suffix('.'))
            .filter(|r| !r.contains('/'))
        {
            return CanonicalUuid::parse(uuid)
                .ok()
                .map(|u| Entry::Flat(u.as_str().to_owned()));
        }
        let (date, name) = (rest.get(..10)?, rest.get(10..)?);
        let date = DateFolder::parse(date).filter(|d| d.to_string() == date)?;
        let uuid = name
            .strip_prefix('/')?
            .strip_suffix(OBJECT_EXTENSION)?
            .strip_suffix('.')?;
        CanonicalUuid::parse(uuid)
            .ok()
            .map(|u| Entry::Object(u.as_str().to_owned(), date))
    }

    /// The uuid of a pointer key, for `list`.
    pub(crate) fn pointer_uuid(&self, path: &Path) -> Option<String> {
        match self.classify(path) {
            Some(Entry::Pointer(uuid)) => Some(uuid),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UUID: &str = "0195b7a2-69ef-8e73-9dd8-dd37220d739c";

    fn uuid() -> CanonicalUuid<'static> {
        CanonicalUuid::parse(UUID).unwrap()
    }

    fn at(text: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(text).unwrap()
    }

    #[test]
    fn keys_are_the_python_module_s() {
        let date = DateFolder::from_created_at(at("2025-03-06T15:30:30-05:00")).unwrap();
        let layout = Layout::new("vcons/", "s3_path").unwrap();
        assert_eq!(
            layout.object(uuid(), date).as_ref(),
            format!("vcons/2025/03/06/{UUID}.vcon")
        );
        assert_eq!(
            layout.pointer(uuid()).as_ref(),
            format!("vcons/lookup/{UUID}.txt")
        );
        let root = Layout::new("", "s3_path").unwrap();
        assert_eq!(
            root.object(uuid(), date).as_ref(),
            format!("2025/03/06/{UUID}.vcon")
        );
        assert_eq!(root.pointer(uuid()).as_ref(), format!("lookup/{UUID}.txt"));
        assert_eq!(root.flat(uuid()).as_ref(), format!("{UUID}.vcon"));
        assert_eq!(layout.flat(uuid()).as_ref(), format!("vcons/{UUID}.vcon"));
        assert_eq!(root.root(), None);
        let deep = Layout::new("a/b c/d", "s3_path").unwrap();
        assert_eq!(
            deep.pointer(uuid()).as_ref(),
            format!("a/b c/d/lookup/{UUID}.txt")
        );
        // Characters object_store would percent-encode in a part stay as written in the prefix,
        // as boto3 sends them.
        let odd = Layout::new("100%/{x}", "s3_path").unwrap();
        assert_eq!(
            odd.pointer(uuid()).as_ref(),
            format!("100%/{{x}}/lookup/{UUID}.txt")
        );
    }

    #[test]
    fn the_date_is_in_the_document_s_own_offset() {
        // 23:30 on the 5th in New York is already the 6th in UTC: the Python module files it
        // under the 5th.
        let date = DateFolder::from_created_at(at("2025-03-05T23:30:00-05:00")).unwrap();
        assert_eq!(date.to_string(), "2025/03/05");
        let date = DateFolder::from_created_at(at("2025-03-06T00:30:00+01:00")).unwrap();
        assert_eq!(date.to_string(), "2025/03/06");
        assert_eq!(
            DateFolder::from_created_at(at("0099-01-02T00:00:00Z"))
                .unwrap()
                .to_string(),
            "0099/01/02"
        );
    }

    #[test]
    fn pointer_bodies_parse_strictly() {
        assert_eq!(
            DateFolder::parse("2025/03/06").unwrap().to_string(),
            "2025/03/06"
        );
        assert_eq!(
            DateFolder::parse("2025/03/06\n").unwrap().to_string(),
            "2025/03/06"
        );
        for bad in [
            "",
            "2025/3/6",
            "2025-03-06",
            "2025/13/01",
            "2025/00/01",
            "2025/01/32",
            "../../etc/x",
            "2025/03/06/x",
            "+025/03/06",
            "２０２５/03/06",
        ] {
            assert_eq!(DateFolder::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn only_canonical_uuids_become_keys() {
        assert!(CanonicalUuid::parse(UUID).is_ok());
        for bad in [
            "",
            "../../etc/passwd",
            "0195B7A2-69EF-8E73-9DD8-DD37220D739C",
            "0195b7a269ef8e739dd8dd37220d739c",
            "{0195b7a2-69ef-8e73-9dd8-dd37220d739c}",
            "0195b7a2-69ef-8e73-9dd8-dd37220d739c ",
            "0195b7a2-69ef-8e73-9dd8-dd37220d739g",
            "0195b7a2/69ef-8e73-9dd8-dd37220d739c",
            "0195b7a2-69ef-8e73-9dd8-dd37220d73/c",
        ] {
            assert!(CanonicalUuid::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn prefixes_are_checked() {
        assert_eq!(
            Layout::new("vcons///", "s3_path").unwrap().prefix(),
            "vcons"
        );
        assert_eq!(Layout::new("/", "s3_path").unwrap().prefix(), "");
        for bad in ["/vcons", "a//b", "a/../b", "./a", "a/\u{7}"] {
            let err = Layout::new(bad, "s3_path").unwrap_err().to_string();
            assert!(err.contains("s3_path"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn listed_keys_are_classified() {
        let layout = Layout::new("p", "s3_path").unwrap();
        let date = DateFolder::parse("2024/02/29").unwrap();
        assert_eq!(
            layout.classify(&layout.object(uuid(), date)),
            Some(Entry::Object(UUID.to_owned(), date))
        );
        assert_eq!(
            layout.classify(&layout.pointer(uuid())),
            Some(Entry::Pointer(UUID.to_owned()))
        );
        assert_eq!(
            layout.classify(&layout.flat(uuid())),
            Some(Entry::Flat(UUID.to_owned()))
        );
        for other in [
            "p/notes.txt",
            "p/lookup/readme.txt",
            "p/2024/02/29/not-a-uuid.vcon",
            "p/2024/2/29/0195b7a2-69ef-8e73-9dd8-dd37220d739c.vcon",
            "p/2024/02/29/0195b7a2-69ef-8e73-9dd8-dd37220d739c.json",
            "q/lookup/0195b7a2-69ef-8e73-9dd8-dd37220d739c.txt",
            "px/lookup/0195b7a2-69ef-8e73-9dd8-dd37220d739c.txt",
        ] {
            assert_eq!(layout.classify(&Path::from(other)), None, "{other}");
        }
    }
}
