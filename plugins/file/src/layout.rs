//! Where a vCon lives on disk: `{path}[/YYYY/MM/DD]/{uuid}.json[.gz]`, the Python module's
//! layout, plus the index entry `{path}/.index/{uuid}` and the names of temporary files.
//!
//! Everything that turns a uuid or a date into a path is here, and every name read back from
//! the disk is parsed here, so nothing else builds a path from outside input.

use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use plugin_sdk::VconRecord;

/// The directory of index entries, under the base directory. Hidden, so the Python module's
/// globs (`**/*.json`) never see it.
pub(crate) const INDEX_DIR: &str = ".index";

/// Present in the index directory while an index build runs: an interrupted build is redone at
/// the next open.
pub(crate) const INCOMPLETE_MARKER: &str = ".incomplete";

/// The two file formats, in the order the Python module prefers them when both exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Ext {
    /// Plain JSON.
    Json,
    /// Gzip-compressed JSON.
    JsonGz,
}

impl Ext {
    /// Both, `.json` first (the Python module's preference).
    pub(crate) const ALL: [Ext; 2] = [Ext::Json, Ext::JsonGz];

    /// The file-name suffix.
    pub(crate) fn suffix(self) -> &'static str {
        match self {
            Ext::Json => ".json",
            Ext::JsonGz => ".json.gz",
        }
    }

    /// The format written with `compression` on or off.
    pub(crate) fn for_compression(compression: bool) -> Self {
        if compression {
            Ext::JsonGz
        } else {
            Ext::Json
        }
    }

    /// The other format.
    pub(crate) fn other(self) -> Self {
        match self {
            Ext::Json => Ext::JsonGz,
            Ext::JsonGz => Ext::Json,
        }
    }
}

/// Whether `uuid` is a canonical UUID: 36 characters, lowercase hex, hyphens at 8, 13, 18 and
/// 23. The host validates uuids already; this is checked again before a uuid becomes part of a
/// path, so no `/`, `..` or NUL can ever reach the file system through one.
pub(crate) fn is_canonical_uuid(uuid: &str) -> bool {
    uuid.len() == 36
        && uuid.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        })
}

/// The `YYYY/MM/DD` a record is filed under: `created_at` in the offset the document was
/// written in (a call at 23:30-05:00 is filed under its local day, as the Python module does),
/// or `None` for years the Python module cannot represent (outside 1..=9999), which it files flat.
pub(crate) fn date_dir(record: &VconRecord<'_>) -> Option<String> {
    let date = record.created_at().format("%Y/%m/%d").to_string();
    let bytes = date.as_bytes();
    let well_formed = bytes.len() == 10
        && bytes[4] == b'/'
        && bytes[7] == b'/'
        && bytes
            .iter()
            .enumerate()
            .all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit());
    (well_formed && !date.starts_with("0000")).then_some(date)
}

/// Whether a directory name is a date component at `depth` (0: `YYYY`, 1: `MM`, 2: `DD`), as
/// the Python module names them: fixed-width digits.
pub(crate) fn is_date_component(name: &str, depth: usize) -> bool {
    let width = if depth == 0 { 4 } else { 2 };
    name.len() == width && name.bytes().all(|b| b.is_ascii_digit())
}

/// A data file name `{uuid}.json` or `{uuid}.json.gz` split into its parts; `None` for any
/// other name (temporary files, the operator's own files).
pub(crate) fn parse_data_name(name: &str) -> Option<(&str, Ext)> {
    let (uuid, ext) = if let Some(uuid) = name.strip_suffix(Ext::JsonGz.suffix()) {
        (uuid, Ext::JsonGz)
    } else {
        (name.strip_suffix(Ext::Json.suffix())?, Ext::Json)
    };
    is_canonical_uuid(uuid).then_some((uuid, ext))
}

/// The file name of a vCon's data file.
pub(crate) fn data_name(uuid: &str, ext: Ext) -> String {
    format!("{uuid}{}", ext.suffix())
}

/// A unique temporary name for `uuid` in the directory that will hold it: hidden (so neither
/// this plugin nor the Python module lists it) and unique per process and call, so concurrent
/// writers never share one.
pub(crate) fn temp_name(uuid: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(".{uuid}.{}.{n}.tmp", std::process::id())
}

/// Whether `name` is a temporary file this plugin made (`.{uuid}.{pid}.{n}.tmp`): the only
/// hidden files it ever removes.
pub(crate) fn is_temp_name(name: &str) -> bool {
    let Some(inner) = name.strip_prefix('.').and_then(|n| n.strip_suffix(".tmp")) else {
        return false;
    };
    let mut parts = inner.splitn(3, '.');
    let (Some(uuid), Some(pid), Some(n)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    is_canonical_uuid(uuid) && digits(pid) && digits(n)
}

/// Where a vCon is, relative to the base directory.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Location {
    /// `YYYY/MM/DD`, or `None` for the flat layout.
    pub(crate) date: Option<String>,
    /// The uuid (canonical).
    pub(crate) uuid: String,
    /// The format.
    pub(crate) ext: Ext,
}

impl Location {
    /// The path relative to the base directory.
    pub(crate) fn relative(&self) -> PathBuf {
        let name = data_name(&self.uuid, self.ext);
        match &self.date {
            Some(date) => Path::new(date).join(name),
            None => PathBuf::from(name),
        }
    }

    /// What the index entry of a dated location points to: relative to the index directory.
    pub(crate) fn index_target(&self) -> PathBuf {
        Path::new("..").join(self.relative())
    }

    /// The same place in the other format.
    pub(crate) fn with_ext(&self, ext: Ext) -> Self {
        Self {
            ext,
            ..self.clone()
        }
    }

    /// Parses an index entry's link target back into a location, accepting only what
    /// [`index_target`](Self::index_target) writes for this `uuid`:
    /// `../YYYY/MM/DD/{uuid}.json[.gz]`. Anything else (an absolute path, `..` further up, another
    /// uuid) is treated as no entry at all, so an index entry can never lead outside the base.
    pub(crate) fn from_index_target(uuid: &str, target: &Path) -> Option<Self> {
        let mut parts = Vec::with_capacity(5);
        for component in target.components() {
            match component {
                Component::ParentDir if parts.is_empty() => parts.push(".."),
                Component::Normal(name) if !parts.is_empty() => parts.push(name.to_str()?),
                _ => return None,
            }
        }
        let [_, year, month, day, name] = parts.as_slice() else {
            return None;
        };
        let dated = [year, month, day]
            .iter()
            .enumerate()
            .all(|(depth, c)| is_date_component(c, depth));
        let (file_uuid, ext) = parse_data_name(name)?;
        (dated && file_uuid == uuid).then(|| Self {
            date: Some(format!("{year}/{month}/{day}")),
            uuid: uuid.to_owned(),
            ext,
        })
    }
}

/// The base directory and the layout options: turns uuids and records into paths.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    base: PathBuf,
    organize_by_date: bool,
    ext: Ext,
}

impl Layout {
    /// The layout under `base`.
    pub(crate) fn new(base: PathBuf, organize_by_date: bool, compression: bool) -> Self {
        Self {
            base,
            organize_by_date,
            ext: Ext::for_compression(compression),
        }
    }

    /// The base directory (the `path` option).
    pub(crate) fn base(&self) -> &Path {
        &self.base
    }

    /// Whether new documents go under date directories.
    pub(crate) fn organize_by_date(&self) -> bool {
        self.organize_by_date
    }

    /// The format new documents are written in.
    pub(crate) fn ext(&self) -> Ext {
        self.ext
    }

    /// Where a record is written under the current options.
    pub(crate) fn location_for(&self, record: &VconRecord<'_>) -> Location {
        Location {
            date: if self.organize_by_date {
                date_dir(record)
            } else {
                None
            },
            uuid: record.uuid.to_owned(),
            ext: self.ext,
        }
    }

    /// The flat location of `uuid` in format `ext`.
    pub(crate) fn flat(&self, uuid: &str, ext: Ext) -> Location {
        Location {
            date: None,
            uuid: uuid.to_owned(),
            ext,
        }
    }

    /// The absolute (or `path`-relative) path of a location.
    pub(crate) fn path_of(&self, location: &Location) -> PathBuf {
        self.base.join(location.relative())
    }

    /// The directory holding a location.
    pub(crate) fn dir_of(&self, location: &Location) -> PathBuf {
        match &location.date {
            Some(date) => self.base.join(date),
            None => self.base.clone(),
        }
    }

    /// The index directory.
    pub(crate) fn index_dir(&self) -> PathBuf {
        self.base.join(INDEX_DIR)
    }

    /// The index entry of `uuid`.
    pub(crate) fn index_entry(&self, uuid: &str) -> PathBuf {
        self.index_dir().join(uuid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UUID: &str = "018c7fd6-8824-8c27-9dd8-dd37220d739c";

    /// A record created at `utc` (RFC 3339) and written in `offset_s`.
    fn record(created_at_us: i64, offset_s: i32) -> VconRecord<'static> {
        let mut record = VconRecord::for_test(UUID, b"{}");
        record.created_at_us = created_at_us;
        record.created_at_offset_s = offset_s;
        record
    }

    // 2023-12-19T02:10:15.204Z
    const DEC_19_0210_UTC: i64 = 1_702_951_815_204_000;

    #[test]
    fn canonical_uuids_only() {
        assert!(is_canonical_uuid(UUID));
        assert!(is_canonical_uuid("00000000-0000-0000-0000-000000000000"));
        for bad in [
            "",
            "018C7FD6-8824-8C27-9DD8-DD37220D739C",
            "018c7fd688248c279dd8dd37220d739c",
            "{018c7fd6-8824-8c27-9dd8-dd37220d739c}",
            "018c7fd6-8824-8c27-9dd8-dd37220d739",
            "018c7fd6-8824-8c27-9dd8-dd37220d739cc",
            "../../../../../../../../etc/passwd..",
            "018c7fd6-8824-8c27-9dd8/dd37220d739c",
            "018c7fd6-8824-8c27-9dd8-dd37220d73.\0",
            "018c7fd6-8824-8c27-9dd8-dd37220d739g",
            "018c7fd6_8824-8c27-9dd8-dd37220d739c",
        ] {
            assert!(!is_canonical_uuid(bad), "{bad:?}");
        }
    }

    #[test]
    fn dated_in_utc() {
        assert_eq!(
            date_dir(&record(DEC_19_0210_UTC, 0)).as_deref(),
            Some("2023/12/19")
        );
    }

    #[test]
    fn dated_in_the_document_offset_across_midnight() {
        // 02:10Z is still the 18th at -05:00 ...
        assert_eq!(
            date_dir(&record(DEC_19_0210_UTC, -5 * 3600)).as_deref(),
            Some("2023/12/18")
        );
        // ... and 21:30Z is already the 20th at +05:00.
        let dec_19_2130_utc = DEC_19_0210_UTC + (19 * 3600 + 20 * 60) * 1_000_000;
        assert_eq!(
            date_dir(&record(dec_19_2130_utc, 0)).as_deref(),
            Some("2023/12/19")
        );
        assert_eq!(
            date_dir(&record(dec_19_2130_utc, 5 * 3600)).as_deref(),
            Some("2023/12/20")
        );
        // Across a month and a year end.
        let dec_31_2000_utc = 1_704_052_800_000_000;
        assert_eq!(
            date_dir(&record(dec_31_2000_utc, 5 * 3600 + 30 * 60)).as_deref(),
            Some("2024/01/01")
        );
    }

    #[test]
    fn years_python_cannot_write_are_flat() {
        // Year 0 (1 BC) and year 10000.
        assert_eq!(date_dir(&record(-62_167_219_200_000_000, 0)), None);
        assert_eq!(date_dir(&record(253_402_300_800_000_000, 0)), None);
        assert_eq!(
            date_dir(&record(-62_135_596_800_000_000, 0)).as_deref(),
            Some("0001/01/01")
        );
        assert_eq!(date_dir(&record(0, 0)).as_deref(), Some("1970/01/01"));
    }

    #[test]
    fn locations_dated_and_flat() {
        let r = record(DEC_19_0210_UTC, 0);
        let dated = Layout::new(PathBuf::from("/data/vcons"), true, false);
        let loc = dated.location_for(&r);
        assert_eq!(
            dated.path_of(&loc),
            PathBuf::from(format!("/data/vcons/2023/12/19/{UUID}.json"))
        );
        assert_eq!(dated.dir_of(&loc), PathBuf::from("/data/vcons/2023/12/19"));
        assert_eq!(
            loc.index_target(),
            PathBuf::from(format!("../2023/12/19/{UUID}.json"))
        );
        assert_eq!(
            dated.index_entry(UUID),
            PathBuf::from(format!("/data/vcons/.index/{UUID}"))
        );

        let flat = Layout::new(PathBuf::from("rel/dir"), false, true);
        let loc = flat.location_for(&r);
        assert_eq!(
            flat.path_of(&loc),
            PathBuf::from(format!("rel/dir/{UUID}.json.gz"))
        );
        assert_eq!(flat.dir_of(&loc), PathBuf::from("rel/dir"));
        assert_eq!(loc.date, None);
    }

    #[test]
    fn index_targets_round_trip_and_nothing_else_is_accepted() {
        let loc = Location {
            date: Some("2024/02/29".into()),
            uuid: UUID.into(),
            ext: Ext::JsonGz,
        };
        assert_eq!(
            Location::from_index_target(UUID, &loc.index_target()),
            Some(loc.clone())
        );
        let other = "00000000-0000-0000-0000-000000000000";
        for bad in [
            format!("/2024/02/29/{UUID}.json"),
            format!("../../2024/02/29/{UUID}.json"),
            format!("2024/02/29/{UUID}.json"),
            format!("../{UUID}.json"),
            format!("../2024/02/{UUID}.json"),
            format!("../2024/02/29/{other}.json"),
            format!("../2024/02/29/{UUID}.txt"),
            format!("../2024/2/29/{UUID}.json"),
            format!("../2024/02/29/../{UUID}.json"),
            format!("../x/02/29/{UUID}.json"),
            format!("../2024/02/29/x/{UUID}.json"),
        ] {
            assert_eq!(
                Location::from_index_target(UUID, Path::new(&bad)),
                None,
                "{bad}"
            );
        }
    }

    #[test]
    fn data_names() {
        assert_eq!(
            parse_data_name(&format!("{UUID}.json")),
            Some((UUID, Ext::Json))
        );
        assert_eq!(
            parse_data_name(&format!("{UUID}.json.gz")),
            Some((UUID, Ext::JsonGz))
        );
        assert_eq!(parse_data_name("config.json"), None);
        assert_eq!(parse_data_name(&format!("{UUID}.json.tmp")), None);
        assert_eq!(parse_data_name(&format!(".{UUID}.json")), None);
        assert_eq!(parse_data_name(UUID), None);
    }

    #[test]
    fn temp_names_are_unique_hidden_and_recognised() {
        let a = temp_name(UUID);
        let b = temp_name(UUID);
        assert_ne!(a, b);
        assert!(a.starts_with('.') && a.ends_with(".tmp"));
        assert!(is_temp_name(&a));
        assert_eq!(parse_data_name(&a), None);
        assert!(!is_temp_name(".tmp"));
        assert!(!is_temp_name(&format!(".{UUID}.tmp")));
        assert!(!is_temp_name(&format!(".{UUID}.12.x.tmp")));
        assert!(!is_temp_name(".something.1.2.tmp"));
        assert!(!is_temp_name(&format!("{UUID}.1.2.tmp")));
    }

    #[test]
    fn date_components() {
        assert!(is_date_component("2024", 0));
        assert!(is_date_component("02", 1));
        assert!(is_date_component("29", 2));
        assert!(!is_date_component("24", 0));
        assert!(!is_date_component("2", 1));
        assert!(!is_date_component(".index", 0));
        assert!(!is_date_component("abcd", 0));
    }
}
