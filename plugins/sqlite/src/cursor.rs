//! The `list` cursor: the position after the last row of a page, `(created_at, id)`, as an
//! opaque string.
//!
//! Keyset paging (`WHERE (created_at, id) < (?, ?)`) walks the `(created_at, id)` index from
//! where the previous page stopped, so every page costs the same however deep it is, and rows
//! saved or deleted between pages neither shift nor repeat the rest. The string is versioned
//! (`c1.`) and hex-encoded so callers treat it as a token, not as data to build by hand.

use crate::error::Error;

const PREFIX: &str = "c1.";
const SEPARATOR: char = '\n';

/// The cursor for the position after the row `(created_at, id)`.
pub(crate) fn encode(created_at: &str, id: &str) -> String {
    let mut out = String::with_capacity(PREFIX.len() + 2 * (created_at.len() + 1 + id.len()));
    out.push_str(PREFIX);
    for byte in created_at
        .bytes()
        .chain(std::iter::once(SEPARATOR as u8))
        .chain(id.bytes())
    {
        out.push(hex_digit(byte >> 4));
        out.push(hex_digit(byte & 0x0f));
    }
    out
}

/// `(created_at, id)` back from a cursor this storage handed out.
pub(crate) fn decode(cursor: &str) -> Result<(String, String), Error> {
    let bad = || Error::BadCursor(cursor.to_owned());
    let hex = cursor.strip_prefix(PREFIX).ok_or_else(bad)?.as_bytes();
    if hex.len() % 2 != 0 {
        return Err(bad());
    }
    let bytes = hex
        .chunks_exact(2)
        .map(|pair| Some(hex_value(pair[0])? << 4 | hex_value(pair[1])?))
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(bad)?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    let (created_at, id) = text.split_once(SEPARATOR).ok_or_else(bad)?;
    if created_at.is_empty() || id.is_empty() || id.contains(SEPARATOR) {
        return Err(bad());
    }
    Ok((created_at.to_owned(), id.to_owned()))
}

fn hex_digit(nibble: u8) -> char {
    char::from(b"0123456789abcdef"[usize::from(nibble & 0x0f)])
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let created = "2024-01-02T03:04:05.123456Z";
        let id = "018f2b9c-6a4e-7c1d-9f00-0123456789ab";
        let cursor = encode(created, id);
        assert!(cursor.starts_with("c1."));
        assert!(!cursor.contains(id), "the cursor is opaque: {cursor}");
        assert_eq!(
            decode(&cursor).unwrap(),
            (created.to_owned(), id.to_owned())
        );
    }

    #[test]
    fn refuses_what_it_did_not_hand_out() {
        let good = encode("2024-01-02T03:04:05.000000Z", "u");
        for bad in [
            "",
            "c1.",
            "c2.00",
            "0068d1fa-7a26-4211-aebe-fa49352fbf14",
            "c1.0",
            "c1.zz",
            "c1.ABCD",
            "c1.ff0a75",
            &good[..good.len() - 2],
            &encode("", "u"),
            &encode("2024", ""),
            &format!("{good}0a75"),
        ] {
            let err = decode(bad).unwrap_err();
            assert!(matches!(err, Error::BadCursor(_)), "{bad}");
            assert!(err.to_string().contains("next"), "{err}");
        }
    }
}
