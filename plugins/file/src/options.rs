//! The `options:` of a file storage, under the Python module's names, and [`Mode`], the
//! permission bits that the Python module could not read from its own example config.

use std::fmt;
use std::path::PathBuf;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// Where the storage writes when `path` is not given. The Python module defaults to
/// `/data/vcons` (a container volume); a relative default lets the host run unprivileged on a
/// fresh machine. It is relative to the host's working directory.
pub const DEFAULT_PATH: &str = "./data/vcons";

/// The default largest document, in uncompressed bytes (10 MiB, as the Python module).
pub const DEFAULT_MAX_FILE_SIZE: u64 = 10 * 1024 * 1024;

/// The `options:` of a file storage. Unknown keys are refused so a typo cannot silently fall
/// back to a default.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Options {
    /// The base directory (created on first write or by `provision`).
    pub path: PathBuf,
    /// File documents under `YYYY/MM/DD/` from `created_at`, in the document's own offset.
    pub organize_by_date: bool,
    /// Write gzip (`.json.gz`) instead of plain `.json`.
    pub compression: bool,
    /// The largest document accepted, in uncompressed bytes; 0 means no limit.
    pub max_file_size: u64,
    /// The mode of every file written.
    pub file_permissions: Mode,
    /// The mode of every directory created.
    pub dir_permissions: Mode,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            path: PathBuf::from(DEFAULT_PATH),
            organize_by_date: true,
            compression: false,
            max_file_size: DEFAULT_MAX_FILE_SIZE,
            file_permissions: Mode(0o644),
            dir_permissions: Mode(0o755),
        }
    }
}

impl Options {
    /// Refuses an empty `path`, and modes with which the storage could not work on its own files: a file its owner
    /// cannot read could never be read back, and a directory its owner cannot enter and write
    /// could not receive the next document. Called once at open, so the mistake is reported
    /// before the first vCon instead of with it.
    pub fn check(&self) -> Result<(), String> {
        if self.path.as_os_str().is_empty() {
            return Err(
                "invalid option path: it is empty; name the directory to store vCons in".to_owned(),
            );
        }
        if self.file_permissions.bits() & 0o400 == 0 {
            return Err(format!(
                "invalid option file_permissions: {} does not let the owner read the files, so \
                 they could not be read back; use e.g. 0o644 or 0o600",
                self.file_permissions
            ));
        }
        if self.dir_permissions.bits() & 0o700 != 0o700 {
            return Err(format!(
                "invalid option dir_permissions: {} does not give the owner rwx on the \
                 directories, so nothing could be written into them; use e.g. 0o755 or 0o700",
                self.dir_permissions
            ));
        }
        Ok(())
    }
}

/// Unix permission bits (`0o000`..=`0o777`) as an operator writes them in `config.yml`.
///
/// Every spelling a YAML or JSON parser can produce for "six-four-four" is accepted:
///
/// | written | parsed by | arrives as | read as |
/// |---|---|---|---|
/// | `0644` | PyYAML (YAML 1.1) | integer 420 | 0o644 |
/// | `0644` | serde_yaml / YAML 1.2 | string `"0644"` or integer 644 | 0o644 |
/// | `0o644` | YAML 1.2 | integer 420 | 0o644 |
/// | `"0o644"`, `"644"`, `"0644"` | any | string | 0o644 |
/// | `420` | any | integer 420 | 0o644 |
///
/// The rule: a string is always octal digits, with an optional `0o` prefix. An integer up to
/// 511 (`0o777`) is the mode itself; a larger integer whose decimal digits are all 0-7 (644,
/// 755, 600) is read as those octal digits. Anything else (`"rwx"`, 9999, negative numbers) is
/// refused, and so are the setuid, setgid and sticky bits (above `0o777`): a storage has no use
/// for them.
///
/// The one ambiguity left is inherent: an integer such as 400 could be a YAML 1.2 reading of
/// `0400` or a decimal mode (0o620); by the rule it is decimal. Quote modes (`"0400"`) to be
/// unambiguous under every parser.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mode(u32);

impl Mode {
    /// The largest mode accepted: permission bits only.
    pub const MAX: u32 = 0o777;

    /// The permission bits.
    pub fn bits(self) -> u32 {
        self.0
    }

    /// A mode from an integer, by the rule in the type's documentation.
    pub fn from_integer(value: u64) -> Result<Self, String> {
        if value <= u64::from(Self::MAX) {
            return u32::try_from(value)
                .map(Self)
                .map_err(|_| format!("{value} is not a permission mode"));
        }
        let digits = value.to_string();
        if !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
            return Err(format!(
                "{value} is not a permission mode: it is above 0o777 (511) and not octal digits \
                 either; write it as \"0o644\", \"644\" or 420"
            ));
        }
        Self::from_octal_digits(&digits, &value.to_string())
    }

    /// A mode from a string of octal digits, optionally prefixed with `0o`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let trimmed = text.trim();
        let digits = trimmed
            .strip_prefix("0o")
            .or_else(|| trimmed.strip_prefix("0O"))
            .unwrap_or(trimmed);
        if digits.is_empty() || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
            return Err(format!(
                "{text:?} is not a permission mode: expected octal digits such as \"0o644\", \
                 \"644\" or \"0644\""
            ));
        }
        Self::from_octal_digits(digits, &format!("{text:?}"))
    }

    fn from_octal_digits(digits: &str, shown: &str) -> Result<Self, String> {
        let significant = digits.trim_start_matches('0');
        // More than three significant octal digits is above 0o777 whatever they are.
        let value = if significant.len() > 3 {
            None
        } else {
            u32::from_str_radix(
                if significant.is_empty() {
                    "0"
                } else {
                    significant
                },
                8,
            )
            .ok()
            .filter(|v| *v <= Self::MAX)
        };
        value.map(Self).ok_or_else(|| {
            format!(
                "{shown} is not a permission mode: above 0o777 (setuid, setgid and sticky bits \
                 are refused)"
            )
        })
    }
}

impl From<Mode> for u32 {
    fn from(mode: Mode) -> Self {
        mode.0
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0o{:03o}", self.0)
    }
}

impl fmt::Debug for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ModeVisitor;

        impl Visitor<'_> for ModeVisitor {
            type Value = Mode;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a permission mode such as \"0o644\", \"644\", \"0644\" or 420")
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Mode, E> {
                Mode::from_integer(value).map_err(E::custom)
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Mode, E> {
                let value = u64::try_from(value).map_err(|_| {
                    E::custom(format!("{value} is not a permission mode: it is negative"))
                })?;
                Mode::from_integer(value).map_err(E::custom)
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<Mode, E> {
                Mode::parse(value).map_err(E::custom)
            }
        }

        deserializer.deserialize_any(ModeVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_sdk::{parse_options, ErrorKind};

    fn mode(json: &str) -> Result<u32, String> {
        serde_json::from_str::<Mode>(json)
            .map(Mode::bits)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn every_spelling_of_0644_is_0o644() {
        for json in [
            "420", // PyYAML's reading of 0644, and YAML 1.2's reading of 0o644
            "644", // a YAML 1.2 integer reading of 0644
            r#""0o644""#,
            r#""0O644""#,
            r#""644""#,
            r#""0644""#,
            r#"" 0644 ""#,
            r#""0o0644""#,
        ] {
            assert_eq!(mode(json), Ok(0o644), "{json}");
        }
    }

    #[test]
    fn other_common_modes() {
        assert_eq!(mode("493"), Ok(0o755));
        assert_eq!(mode("755"), Ok(0o755));
        assert_eq!(mode("600"), Ok(0o600));
        assert_eq!(mode("700"), Ok(0o700));
        assert_eq!(mode("777"), Ok(0o777));
        assert_eq!(mode("511"), Ok(0o777));
        assert_eq!(mode(r#""0755""#), Ok(0o755));
        assert_eq!(mode(r#""0o600""#), Ok(0o600));
        assert_eq!(mode(r#""0""#), Ok(0));
        assert_eq!(mode(r#""000""#), Ok(0));
        assert_eq!(mode("0"), Ok(0));
    }

    #[test]
    fn small_integers_are_the_mode_itself() {
        // The documented ambiguity: 400 is decimal (0o620), not the octal digits 4-0-0.
        assert_eq!(mode("400"), Ok(400));
        assert_eq!(mode("256"), Ok(0o400));
        assert_eq!(mode("448"), Ok(0o700));
        // Just above 0o777 and all octal digits: the octal reading.
        assert_eq!(mode("512"), Ok(0o512));
    }

    #[test]
    fn refuses_what_is_not_a_mode() {
        for json in [
            r#""rwx""#,
            r#""rw-r--r--""#,
            r#""""#,
            r#""0o""#,
            r#""0x1a4""#,
            r#""+644""#,
            r#""-644""#,
            r#""648""#,
            r#""9""#,
            "9999",
            "1000", // 0o1000: the sticky bit
            "4755", // setuid
            "2755", // setgid
            "7777",
            "4095", // 0o7777 as an integer: not octal digits
            "518",
            "800",
            "-420",
            "6.44",
            "true",
            "null",
            "[420]",
            r#""0o1777""#,
            r#""0o7777""#,
            r#""12345678901234567890""#,
            "18446744073709551615",
        ] {
            assert!(
                mode(json).is_err(),
                "{json} should be refused: {:?}",
                mode(json)
            );
        }
    }

    #[test]
    fn refusals_say_what_is_accepted() {
        let err = mode(r#""rwx""#).unwrap_err();
        assert!(err.contains("rwx") && err.contains("0o644"), "{err}");
        let err = mode("4755").unwrap_err();
        assert!(err.contains("setuid"), "{err}");
        let err = mode("9999").unwrap_err();
        assert!(err.contains("9999") && err.contains("0o777"), "{err}");
    }

    #[test]
    fn displays_in_octal() {
        assert_eq!(Mode(0o644).to_string(), "0o644");
        assert_eq!(Mode(0o7).to_string(), "0o007");
        assert_eq!(format!("{:?}", Mode(0o755)), "0o755");
    }

    #[test]
    fn defaults_are_the_python_module_s_except_path() {
        let options: Options = parse_options("{}").unwrap();
        assert_eq!(options, Options::default());
        assert_eq!(options.path, PathBuf::from("./data/vcons"));
        assert!(options.organize_by_date);
        assert!(!options.compression);
        assert_eq!(options.max_file_size, 10_485_760);
        assert_eq!(options.file_permissions.bits(), 0o644);
        assert_eq!(options.dir_permissions.bits(), 0o755);
    }

    #[test]
    fn python_option_names_parse() {
        let options: Options = parse_options(
            r#"{"path": "/srv/vcons", "organize_by_date": false, "compression": true,
                "max_file_size": 1024, "file_permissions": "0o600", "dir_permissions": 448}"#,
        )
        .unwrap();
        assert_eq!(options.path, PathBuf::from("/srv/vcons"));
        assert!(!options.organize_by_date);
        assert!(options.compression);
        assert_eq!(options.max_file_size, 1024);
        assert_eq!(options.file_permissions.bits(), 0o600);
        assert_eq!(options.dir_permissions.bits(), 0o700);
    }

    #[test]
    fn a_bad_mode_names_the_option() {
        let err = parse_options::<Options>(r#"{"file_permissions": "rwx"}"#).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.message().contains("file_permissions"), "{err}");
        assert!(err.message().contains("rwx"), "{err}");
        let err = parse_options::<Options>(r#"{"dir_permissions": 9999}"#).unwrap_err();
        assert!(err.message().contains("dir_permissions"), "{err}");
    }

    #[test]
    fn unknown_options_are_refused() {
        let err = parse_options::<Options>(r#"{"compress": true}"#).unwrap_err();
        assert!(err.message().contains("compress"), "{err}");
    }

    #[test]
    fn modes_the_storage_cannot_live_with_are_refused() {
        let mut options = Options::default();
        assert!(options.check().is_ok());
        options.file_permissions = Mode(0o200);
        let err = options.check().unwrap_err();
        assert!(err.contains("file_permissions"), "{err}");
        options.file_permissions = Mode(0o400);
        assert!(options.check().is_ok());
        options.dir_permissions = Mode(0o644);
        let err = options.check().unwrap_err();
        assert!(err.contains("dir_permissions"), "{err}");
        let options = Options {
            path: PathBuf::new(),
            ..Options::default()
        };
        assert!(options.check().unwrap_err().contains("path"));
    }
}
