//! SQL text for Space and Time, which takes no bound parameters: every value is rendered as a
//! literal by [`sql_literal`] (the one function that quotes), every uuid is validated first,
//! and the table name is a validated identifier. The statements the storage sends are built
//! here and nowhere else.
//!
//! # How a value becomes a literal
//!
//! Standard SQL: the text between single quotes, each `'` doubled. Nothing else is special in
//! the dialect behind Space and Time (Apache Ignite / H2 by every sign, and the emulator's
//! SQLite): a backslash is an ordinary character, so `\"` in JSON is stored as those two
//! characters and comes back unchanged; newlines, tabs, Unicode and emoji pass through as they
//! are. The one refused character is NUL (U+0000): engines written in C stop a string there,
//! so it could cut a statement short. A vCon's JSON never holds a raw NUL (JSON escapes it as
//! `\u0000`), so only a subject with one can be refused.
//!
//! Whether the real service treats backslashes this way was verified only against the
//! emulator; the round-trip tests keep backslash-heavy documents in the conformance suite.

use plugin_sdk::VconRecord;

use crate::error::Error;

/// The longest VARCHAR in Space and Time, in characters: the limit on each column.
pub const VARCHAR_LIMIT: usize = 65_536;

/// The columns of the vCon table, in the order statements list them.
const COLUMNS: &str = "UUID, VCON, CREATED_AT, SUBJECT, VCON_JSON";

/// Renders `text` as a SQL string literal: `it's` → `'it''s'`. Refuses NUL; see the module
/// documentation for why nothing else needs escaping.
pub(crate) fn sql_literal(text: &str) -> Result<String, Error> {
    if text.contains('\0') {
        return Err(Error::Nul);
    }
    let mut out = String::with_capacity(text.len() + 2 + text.matches('\'').count());
    out.push('\'');
    for c in text.chars() {
        if c == '\'' {
            out.push('\'');
        }
        out.push(c);
    }
    out.push('\'');
    Ok(out)
}

/// A literal, or `NULL` for `None`.
fn nullable_literal(text: Option<&str>) -> Result<String, Error> {
    text.map_or_else(|| Ok("NULL".to_owned()), sql_literal)
}

/// A uuid checked to be 8-4-4-4-12 hex digits, in lower case: safe in a literal whatever the
/// caller passed, and compared exactly with what `save` stored.
pub(crate) fn check_uuid(uuid: &str) -> Result<String, Error> {
    let bytes = uuid.as_bytes();
    let shaped = bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        });
    if shaped {
        Ok(uuid.to_ascii_lowercase())
    } else {
        Err(Error::BadUuid(uuid.to_owned()))
    }
}

/// The uuid as a literal, validated first.
fn uuid_literal(uuid: &str) -> Result<String, Error> {
    sql_literal(&check_uuid(uuid)?)
}

/// `SCHEMA.TABLE`, each part an identifier (`[A-Za-z_][A-Za-z0-9_]*`), as Space and Time
/// names tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableName {
    schema: String,
    table: String,
}

impl TableName {
    /// Parses and validates `SCHEMA.TABLE` (any case).
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let Some((schema, table)) = text.split_once('.') else {
            return Err(format!(
                "invalid table_name {text:?}: Space and Time tables are named SCHEMA.TABLE \
                 (e.g. VCON.VCONS)"
            ));
        };
        for part in [schema, table] {
            let mut chars = part.chars();
            let first_ok = chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
            if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!(
                    "invalid table_name {text:?}: {part:?} is not an identifier (letters, \
                     digits and _, not starting with a digit)"
                ));
            }
        }
        Ok(Self {
            schema: schema.to_ascii_uppercase(),
            table: table.to_ascii_uppercase(),
        })
    }

    /// The name in SQL: upper case, as unquoted identifiers are folded.
    pub fn sql(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }

    /// The schema, upper case.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The resource id in biscuits: lower case, as Space and Time's tools write it.
    pub fn resource(&self) -> String {
        format!("{}.{}", self.schema, self.table).to_ascii_lowercase()
    }
}

/// One vCon as a table row, every value already a literal.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) uuid: String,
    values: String,
    assignments: String,
}

impl Row {
    /// The row for a record, refusing values over the VARCHAR limit or holding NUL.
    pub(crate) fn new(record: &VconRecord<'_>) -> Result<Self, Error> {
        let uuid = check_uuid(record.uuid)?;
        let json = record.json_str();
        let version = version_of(record.json);
        let created_at = record.created_at().to_rfc3339();
        for (column, value) in [
            ("VCON_JSON", Some(json)),
            ("SUBJECT", record.subject),
            ("VCON", version.as_deref()),
        ] {
            let chars = value.map_or(0, |v| v.chars().count());
            if chars > VARCHAR_LIMIT {
                return Err(Error::TooLarge {
                    uuid,
                    column,
                    chars,
                });
            }
        }
        let literal = |column: &'static str, value: Option<&str>| {
            nullable_literal(value).map_err(|_| Error::NulIn {
                uuid: uuid.clone(),
                column,
            })
        };
        let uuid_lit = sql_literal(&uuid)?;
        let vcon = literal("VCON", version.as_deref())?;
        let created = literal("CREATED_AT", Some(&created_at))?;
        let subject = literal("SUBJECT", record.subject)?;
        let body = literal("VCON_JSON", Some(json))?;
        Ok(Self {
            values: format!("({uuid_lit}, {vcon}, {created}, {subject}, {body})"),
            assignments: format!(
                "VCON = {vcon}, CREATED_AT = {created}, SUBJECT = {subject}, VCON_JSON = {body}"
            ),
            uuid,
        })
    }

    /// The length of the row's values in the statement, for sizing batches.
    pub(crate) fn len(&self) -> usize {
        self.values.len()
    }
}

/// The document's `vcon` (spec version) string, for the `VCON` column.
fn version_of(json: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Version {
        vcon: Option<serde_json::Value>,
    }
    serde_json::from_slice::<Version>(json)
        .ok()
        .and_then(|v| v.vcon)
        .and_then(|v| v.as_str().map(str::to_owned))
}

/// `INSERT` of one or more rows.
pub(crate) fn insert(table: &TableName, rows: &[&Row]) -> String {
    let values: Vec<&str> = rows.iter().map(|r| r.values.as_str()).collect();
    format!(
        "INSERT INTO {} ({COLUMNS}) VALUES {}",
        table.sql(),
        values.join(", ")
    )
}

/// `UPDATE` of one row by uuid.
pub(crate) fn update(table: &TableName, row: &Row) -> Result<String, Error> {
    Ok(format!(
        "UPDATE {} SET {} WHERE UUID = {}",
        table.sql(),
        row.assignments,
        uuid_literal(&row.uuid)?
    ))
}

/// The stored JSON of one uuid.
pub(crate) fn select_json(table: &TableName, uuid: &str) -> Result<String, Error> {
    Ok(format!(
        "SELECT VCON_JSON FROM {} WHERE UUID = {}",
        table.sql(),
        uuid_literal(uuid)?
    ))
}

/// The uuid, if stored.
pub(crate) fn select_uuid(table: &TableName, uuid: &str) -> Result<String, Error> {
    Ok(format!(
        "SELECT UUID FROM {} WHERE UUID = {}",
        table.sql(),
        uuid_literal(uuid)?
    ))
}

/// The uuid and JSON of each stored one of `uuids`.
pub(crate) fn select_many(table: &TableName, uuids: &[String]) -> Result<String, Error> {
    let list = uuids
        .iter()
        .map(|u| uuid_literal(u))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(format!(
        "SELECT UUID, VCON_JSON FROM {} WHERE UUID IN ({})",
        table.sql(),
        list.join(", ")
    ))
}

/// Removes one uuid.
pub(crate) fn delete(table: &TableName, uuid: &str) -> Result<String, Error> {
    Ok(format!(
        "DELETE FROM {} WHERE UUID = {}",
        table.sql(),
        uuid_literal(uuid)?
    ))
}

/// Removes every row.
pub(crate) fn delete_all(table: &TableName) -> String {
    format!("DELETE FROM {}", table.sql())
}

/// Counts the rows.
pub(crate) fn count(table: &TableName) -> String {
    format!("SELECT COUNT(*) AS N FROM {}", table.sql())
}

/// A page of uuids in order, after the cursor.
pub(crate) fn list(table: &TableName, after: Option<&str>, limit: usize) -> Result<String, Error> {
    let filter = match after {
        Some(after) => format!(" WHERE UUID > {}", uuid_literal(after)?),
        None => String::new(),
    };
    Ok(format!(
        "SELECT UUID FROM {}{filter} ORDER BY UUID LIMIT {limit}",
        table.sql()
    ))
}

/// The schema, for `provision`.
pub(crate) fn create_schema(table: &TableName) -> String {
    format!("CREATE SCHEMA {}", table.schema())
}

/// The vCon table, created with the table's public key (hex) and access type.
pub(crate) fn create_table(
    table: &TableName,
    public_key_hex: &str,
    access_type: &str,
) -> Result<String, Error> {
    let hex_ok =
        public_key_hex.len() == 64 && public_key_hex.bytes().all(|b| b.is_ascii_hexdigit());
    let access_ok = matches!(
        access_type,
        "permissioned" | "public_read" | "public_append" | "public_write"
    );
    if !hex_ok || !access_ok {
        return Err(Error::Options(format!(
            "cannot create the table with public key {public_key_hex:?} and access_type \
             {access_type:?}"
        )));
    }
    Ok(format!(
        "CREATE TABLE {} (UUID VARCHAR, VCON VARCHAR, CREATED_AT VARCHAR, SUBJECT VARCHAR, \
         VCON_JSON VARCHAR, PRIMARY KEY (UUID)) WITH \
         \"public_key={public_key_hex},access_type={access_type}\"",
        table.sql()
    ))
}

/// Drops the table, for `provision {recreate}`.
pub(crate) fn drop_table(table: &TableName) -> String {
    format!("DROP TABLE {}", table.sql())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn lit(text: &str) -> String {
        sql_literal(text).unwrap()
    }

    /// Reads a rendered literal back the way a standard SQL lexer does, checking that it is one
    /// single token (nothing after the closing quote).
    fn unquote(literal: &str) -> String {
        let inner = literal
            .strip_prefix('\'')
            .and_then(|s| s.strip_suffix('\''))
            .unwrap();
        let mut out = String::new();
        let mut chars = inner.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\'' {
                assert_eq!(
                    chars.next(),
                    Some('\''),
                    "a lone quote ends the literal early: {literal}"
                );
            }
            out.push(c);
        }
        out
    }

    #[test]
    fn quotes_are_doubled() {
        assert_eq!(lit(""), "''");
        assert_eq!(lit("plain"), "'plain'");
        assert_eq!(lit("it's"), "'it''s'");
        assert_eq!(lit("'"), "''''");
        assert_eq!(lit("''"), "''''''");
        assert_eq!(lit("'leading"), "'''leading'");
        assert_eq!(lit("trailing'"), "'trailing'''");
    }

    #[test]
    fn injection_attempts_stay_inside_the_literal() {
        for attack in [
            "'; DROP TABLE x; --",
            "' OR '1'='1",
            "x'); DELETE FROM VCON.VCONS; --",
            "\\'; DROP TABLE x; --",
            "\\",
            "\\\\'",
            "'/*",
            "*/'",
            "-- comment",
            "\"double\" quoted",
            "$$ dollar $$",
            "%s {} ?",
        ] {
            let rendered = lit(attack);
            assert_eq!(unquote(&rendered), attack, "{attack}");
            // The only quotes inside are doubled ones.
            let inner = &rendered[1..rendered.len() - 1];
            assert_eq!(
                inner.replace("''", "").matches('\'').count(),
                0,
                "{rendered}"
            );
        }
        assert_eq!(lit("'; DROP TABLE x; --"), "'''; DROP TABLE x; --'");
    }

    #[test]
    fn backslashes_are_ordinary_characters() {
        assert_eq!(lit("a\\b"), "'a\\b'");
        assert_eq!(lit("\\"), "'\\'");
        assert_eq!(
            lit(r#"{"q": "say \"hi\"\n"}"#),
            r#"'{"q": "say \"hi\"\n"}'"#
        );
        assert_eq!(lit("\\'"), "'\\'''");
    }

    #[test]
    fn unicode_and_whitespace_pass_through() {
        for text in [
            "ünïcödé",
            "电话",
            "😀 emoji",
            "line\nbreak",
            "tab\there",
            "cr\r\nlf",
            "\u{1}\u{1f}\u{7f}",
            "\u{2028}\u{2029}",
            "\u{feff}bom",
            "ʼ modifier apostrophe and ’ curly",
        ] {
            assert_eq!(unquote(&lit(text)), text, "{text:?}");
            assert_eq!(lit(text), format!("'{text}'"), "{text:?}");
        }
    }

    #[test]
    fn nul_is_refused() {
        assert!(matches!(sql_literal("a\0b"), Err(Error::Nul)));
        assert!(matches!(sql_literal("\0"), Err(Error::Nul)));
        assert!(matches!(nullable_literal(Some("\0")), Err(Error::Nul)));
        assert_eq!(nullable_literal(None).unwrap(), "NULL");
    }

    #[test]
    fn every_single_character_round_trips() {
        // Every ASCII character and a sample across the Unicode planes.
        let chars = (1_u32..0x80)
            .chain((0x80..0x3_0000).step_by(97))
            .filter_map(char::from_u32);
        for c in chars {
            let text = format!("a{c}b{c}");
            assert_eq!(unquote(&lit(&text)), text, "{c:?}");
        }
    }

    #[test]
    fn uuids_are_validated_and_lower_cased() {
        assert_eq!(
            check_uuid("018F3E2A-7B1C-7D2E-8F90-0123456789AB").unwrap(),
            "018f3e2a-7b1c-7d2e-8f90-0123456789ab"
        );
        for bad in [
            "",
            "not-a-uuid",
            "018f3e2a-7b1c-7d2e-8f90-0123456789a",
            "018f3e2a-7b1c-7d2e-8f90-0123456789abc",
            "018f3e2a7b1c7d2e8f900123456789ab",
            "018f3e2a-7b1c-7d2e-8f90-0123456789a'",
            "'; DROP TABLE x; --aaaaaaaaaaaaaaaaaa",
            "018f3e2a-7b1c-7d2e-8f90-01234567890g",
            "018f3e2a_7b1c-7d2e-8f90-0123456789ab",
            "０18f3e2a-7b1c-7d2e-8f90-0123456789a",
        ] {
            assert!(check_uuid(bad).is_err(), "{bad}");
        }
        assert!(select_json(&table(), "x' OR 1=1 --").is_err());
    }

    fn table() -> TableName {
        TableName::parse("vcon.vcons").unwrap()
    }

    #[test]
    fn table_names_are_identifiers() {
        assert_eq!(table().sql(), "VCON.VCONS");
        assert_eq!(table().resource(), "vcon.vcons");
        assert_eq!(TableName::parse(" My_S.t_1 ").unwrap().sql(), "MY_S.T_1");
        assert_eq!(TableName::parse("_a._b").unwrap().sql(), "_A._B");
        for bad in [
            "vcons", "", ".", "a.", ".b", "a.b.c", "1a.b", "a.1b", "a-b.c", "a.b;drop", "a.b c",
            "a.\"b\"", "ä.b", "a.b'",
        ] {
            assert!(TableName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn statements() {
        let json = br#"{"vcon":"0.0.1","uuid":"018f3e2a-7b1c-7d2e-8f90-0123456789ab"}"#;
        let mut record = VconRecord::for_test("018f3e2a-7b1c-7d2e-8f90-0123456789ab", json);
        record.subject = Some("'; DROP TABLE x; --");
        let row = Row::new(&record).unwrap();
        assert_eq!(
            insert(&table(), &[&row]),
            "INSERT INTO VCON.VCONS (UUID, VCON, CREATED_AT, SUBJECT, VCON_JSON) VALUES \
             ('018f3e2a-7b1c-7d2e-8f90-0123456789ab', '0.0.1', '2023-11-14T22:13:20+00:00', \
             '''; DROP TABLE x; --', \
             '{\"vcon\":\"0.0.1\",\"uuid\":\"018f3e2a-7b1c-7d2e-8f90-0123456789ab\"}')"
        );
        assert_eq!(
            update(&table(), &row).unwrap(),
            "UPDATE VCON.VCONS SET VCON = '0.0.1', CREATED_AT = '2023-11-14T22:13:20+00:00', \
             SUBJECT = '''; DROP TABLE x; --', \
             VCON_JSON = '{\"vcon\":\"0.0.1\",\"uuid\":\"018f3e2a-7b1c-7d2e-8f90-0123456789ab\"}' \
             WHERE UUID = '018f3e2a-7b1c-7d2e-8f90-0123456789ab'"
        );
        assert_eq!(
            list(&table(), None, 11).unwrap(),
            "SELECT UUID FROM VCON.VCONS ORDER BY UUID LIMIT 11"
        );
        assert!(create_table(&table(), &"ab".repeat(32), "permissioned")
            .unwrap()
            .ends_with(&format!(
                "PRIMARY KEY (UUID)) WITH \"public_key={},access_type=permissioned\"",
                "ab".repeat(32)
            )));
        assert!(create_table(&table(), "ab\"x", "permissioned").is_err());
        assert!(create_table(&table(), &"ab".repeat(32), "open\"").is_err());
    }

    #[test]
    fn oversized_values_are_refused_with_size_and_limit() {
        let body = "x".repeat(VARCHAR_LIMIT);
        let json = format!(r#"{{"vcon":"0.0.1","b":"{body}"}}"#);
        let record = VconRecord::for_test("018f3e2a-7b1c-7d2e-8f90-0123456789ab", json.as_bytes());
        let err = Row::new(&record).unwrap_err();
        let message = err.to_string();
        assert!(message.contains(&json.len().to_string()), "{message}");
        assert!(
            message.contains("65,536") || message.contains("65536"),
            "{message}"
        );
        assert!(message.contains("too large"), "{message}");
        // Exactly at the limit (counted in characters, not bytes) is fine.
        let fill = "é".repeat(VARCHAR_LIMIT - 2);
        let json = format!("\"{fill}\"");
        assert_eq!(json.chars().count(), VARCHAR_LIMIT);
        let record = VconRecord::for_test("018f3e2a-7b1c-7d2e-8f90-0123456789ab", json.as_bytes());
        assert!(Row::new(&record).is_ok());
    }

    #[test]
    fn a_nul_in_the_subject_names_the_column() {
        let mut record = VconRecord::for_test("018f3e2a-7b1c-7d2e-8f90-0123456789ab", b"{}");
        record.subject = Some("a\0b");
        let err = Row::new(&record).unwrap_err().to_string();
        assert!(err.contains("SUBJECT"), "{err}");
    }
}
