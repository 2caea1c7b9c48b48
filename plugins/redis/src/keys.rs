//! The key layout: `{prefix}:{uuid}`, as the Python module writes it, and the checks that keep
//! anything but a uuid out of a key.
//!
//! The host validates uuids already; they are checked again here because a key is built from
//! them, and Redis key patterns give meaning to `*`, `?`, `[` and `\`: a "uuid" of `*` must never
//! reach a command, and a prefix with those characters must match only itself when listing.

/// Whether `uuid` has the shape of a UUID: 36 characters, hex digits (either case, kept as
/// given, since the Python module put the uuid in the key verbatim) with hyphens at 8, 13, 18
/// and 23. Nothing else can become part of a key.
pub(crate) fn is_uuid(uuid: &str) -> bool {
    uuid.len() == 36
        && uuid.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// The layout of one storage's keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyLayout {
    /// `{prefix}:`, the part every key starts with.
    head: String,
    /// The `SCAN ... MATCH` pattern of every key of this layout: the head with glob characters
    /// escaped, then `*`.
    pattern: String,
}

impl KeyLayout {
    /// The layout for `prefix` (already checked to be non-empty).
    pub(crate) fn new(prefix: &str) -> Self {
        let head = format!("{prefix}:");
        let mut pattern = String::with_capacity(head.len() + 8);
        for c in head.chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push('*');
        Self { head, pattern }
    }

    /// The key of a uuid already checked with [`is_uuid`].
    pub(crate) fn key(&self, uuid: &str) -> String {
        let mut key = String::with_capacity(self.head.len() + uuid.len());
        key.push_str(&self.head);
        key.push_str(uuid);
        key
    }

    /// The `MATCH` pattern that finds this layout's keys.
    pub(crate) fn pattern(&self) -> &str {
        &self.pattern
    }

    /// The uuid a key holds, when it is one of this layout's vCon keys: `{prefix}:` then a uuid
    /// and nothing more. Keys of a longer prefix (`{prefix}:x:{uuid}`) or of other programs
    /// sharing the prefix are not vCons of this storage.
    pub(crate) fn uuid_of<'a>(&self, key: &'a [u8]) -> Option<&'a str> {
        let rest = key.strip_prefix(self.head.as_bytes())?;
        let uuid = std::str::from_utf8(rest).ok()?;
        is_uuid(uuid).then_some(uuid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_uuids_become_keys() {
        for good in [
            "0190f2a0-8b4c-7def-9abc-0123456789ab",
            "0190F2A0-8B4C-7DEF-9ABC-0123456789AB",
        ] {
            assert!(is_uuid(good), "{good}");
        }
        for bad in [
            "",
            "*",
            "vcon_storage:*",
            "0190f2a0-8b4c-7def-9abc-0123456789a",
            "0190f2a0-8b4c-7def-9abc-0123456789abc",
            "0190f2a0_8b4c-7def-9abc-0123456789ab",
            "0190f2a0-8b4c-7def-9abc-0123456789a*",
            "0190f2a0-8b4c-7def-9abc-0123456789a\n",
            "../../../../etc/passwd-0000-0000-000",
            "0190f2a0-8b4c-7def-9abc-0123456789aé",
        ] {
            assert!(!is_uuid(bad), "{bad:?}");
        }
    }

    #[test]
    fn keys_are_prefix_colon_uuid() {
        let layout = KeyLayout::new("vcon_storage");
        let uuid = "0190f2a0-8b4c-7def-9abc-0123456789ab";
        assert_eq!(layout.key(uuid), format!("vcon_storage:{uuid}"));
        assert_eq!(layout.pattern(), "vcon_storage:*");
        assert_eq!(layout.uuid_of(layout.key(uuid).as_bytes()), Some(uuid));
        assert_eq!(layout.uuid_of(b"vcon_storage:not-a-uuid"), None);
        assert_eq!(
            layout.uuid_of(format!("vcon_storage:x:{uuid}").as_bytes()),
            None
        );
        assert_eq!(layout.uuid_of(format!("other:{uuid}").as_bytes()), None);
        assert_eq!(
            layout.uuid_of(format!("vcon_storage:{uuid}:x").as_bytes()),
            None
        );
    }

    #[test]
    fn glob_characters_in_a_prefix_match_only_themselves() {
        let layout = KeyLayout::new(r"a*b?[c]\d");
        assert_eq!(layout.pattern(), r"a\*b\?\[c\]\\d:*");
        assert_eq!(layout.key("x"), r"a*b?[c]\d:x");
    }
}
