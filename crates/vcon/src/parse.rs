//! [`parse`]: one pass over the bytes, reading only the fields that are checked or extracted.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::{rules, Problem, Timestamp, VconError};

/// The fields of a valid vCon that backends index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedVcon {
    /// The uuid, in canonical lowercase hyphenated form: safe in a path, a key or a query.
    pub uuid: String,
    /// The `vcon` spec version string, when present.
    pub version: Option<String>,
    /// `created_at`, when present (a document without one is dated by the host).
    pub created_at: Option<Timestamp>,
    /// `updated_at`, when present.
    pub updated_at: Option<Timestamp>,
    /// The subject, when present and not null.
    pub subject: Option<String>,
    /// Each party's identifiers, for search indexes.
    pub parties: Vec<PartyIds>,
}

/// A party's identifiers, as search indexes use them (exact strings, as the Python server).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartyIds {
    /// `tel`.
    pub tel: Option<String>,
    /// `mailto`.
    pub mailto: Option<String>,
    /// `name`.
    pub name: Option<String>,
}

/// A field that was present (possibly `null`), kept as its raw JSON text; absent fields stay
/// `None`. (`Option<&RawValue>` alone would read `null` as absent, and `parties: null` must be
/// refused.) Text rather than a `RawValue`, so [`scanned_top`] can fill it from a span.
#[derive(Debug, Default)]
struct Field<'a>(Option<&'a str>);

impl<'de: 'a, 'a> Deserialize<'de> for Field<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <&'a RawValue>::deserialize(d).map(|raw| Field(Some(raw.get())))
    }
}

/// The top level, reading only what is checked; serde skips every other key without
/// building anything. Generic over how the two lists are read: [`Objects`] in the pass that
/// reads a valid document once, [`Field`] in the pass that describes what is wrong.
#[derive(Deserialize)]
struct Top<'a, P, D> {
    #[serde(borrow, default)]
    uuid: Field<'a>,
    #[serde(borrow, default)]
    vcon: Field<'a>,
    #[serde(borrow, default)]
    created_at: Field<'a>,
    #[serde(borrow, default)]
    updated_at: Field<'a>,
    #[serde(borrow, default)]
    subject: Field<'a>,
    #[serde(default)]
    parties: P,
    #[serde(default)]
    dialog: D,
    #[serde(borrow, default)]
    analysis: Field<'a>,
    #[serde(borrow, default)]
    attachments: Field<'a>,
    #[serde(borrow, default)]
    group: Field<'a>,
}

/// A list read element by element as it is read (absent: `None`). `null`, or anything but a
/// list of objects, fails the whole first pass, and [`parse`] reads the document again with
/// its lists kept raw, to say which element is wrong.
struct Objects<T>(Option<Vec<T>>);

impl<T> Default for Objects<T> {
    fn default() -> Self {
        Self(None)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Objects<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::<T>::deserialize(d).map(|items| Self(Some(items)))
    }
}

/// A list field of [`Top`], read one way or the other.
trait List<'a, T> {
    /// The elements with their indices (a problem for each that is not an object), and whether
    /// the field was present at all.
    fn items(self, c: &mut Checker, path: &str) -> (Vec<(usize, T)>, bool);
}

impl<'a, T> List<'a, T> for Objects<T> {
    fn items(self, _: &mut Checker, _: &str) -> (Vec<(usize, T)>, bool) {
        let present = self.0.is_some();
        (
            self.0.unwrap_or_default().into_iter().enumerate().collect(),
            present,
        )
    }
}

impl<'a, T: Deserialize<'a>> List<'a, T> for Field<'a> {
    fn items(self, c: &mut Checker, path: &str) -> (Vec<(usize, T)>, bool) {
        (c.list(path, &self), self.0.is_some())
    }
}

#[derive(Deserialize)]
struct Party<'a> {
    #[serde(borrow, default)]
    tel: Field<'a>,
    #[serde(borrow, default)]
    mailto: Field<'a>,
    #[serde(borrow, default)]
    name: Field<'a>,
}

#[derive(Deserialize)]
struct Dialog<'a> {
    #[serde(borrow, default)]
    duration: Field<'a>,
    #[serde(borrow, default)]
    url: Field<'a>,
    #[serde(borrow, default)]
    mimetype: Field<'a>,
    #[serde(borrow, default)]
    mediatype: Field<'a>,
    #[serde(borrow, default)]
    alg: Field<'a>,
    #[serde(borrow, default)]
    parties: Field<'a>,
}

/// A JSON value's kind, for messages ("found string \"long\"").
fn describe(text: &str) -> String {
    let kind = match text.as_bytes().first() {
        Some(b'"') => "string",
        Some(b'{') => "an object",
        Some(b'[') => "a list",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => return "null".to_owned(),
        _ => "number",
    };
    let shown: String = text.chars().take(40).collect();
    let ellipsis = if text.chars().count() > 40 { "…" } else { "" };
    format!("{kind} {shown}{ellipsis}")
}

struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    fn problem(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }

    /// A string field; `null` is `None`; anything else is a problem.
    fn string<'a>(&mut self, path: &str, field: &Field<'a>) -> Option<Cow<'a, str>> {
        self.string_at(|| path.to_owned(), field)
    }

    /// [`Checker::string`] for a field in a list: its path (`dialog[3].url`) is only written
    /// out when there is a problem, since valid documents are the common case and a vCon has
    /// dozens of dialogs.
    fn string_at<'a>(
        &mut self,
        path: impl FnOnce() -> String,
        field: &Field<'a>,
    ) -> Option<Cow<'a, str>> {
        let raw = field.0?;
        if raw == "null" {
            return None;
        }
        match serde_json::from_str::<Cow<'a, str>>(raw) {
            Ok(text) => Some(text),
            Err(_) => {
                self.problem(path(), format!("must be a string, found {}", describe(raw)));
                None
            }
        }
    }

    /// A list field whose elements are parsed as `T`; `null` or another type is a problem.
    fn list<'a, T: Deserialize<'a>>(&mut self, path: &str, field: &Field<'a>) -> Vec<(usize, T)> {
        let Some(raw) = field.0 else {
            return Vec::new();
        };
        // Every element an object, as in any valid vCon: one pass over the list. Otherwise the
        // slower pass below finds which elements are not.
        if let Ok(all) = serde_json::from_str::<Vec<T>>(raw) {
            return all.into_iter().enumerate().collect();
        }
        let items: Vec<&'a RawValue> = match serde_json::from_str(raw) {
            Ok(items) => items,
            Err(_) => {
                self.problem(path, format!("must be a list, found {}", describe(raw)));
                return Vec::new();
            }
        };
        let mut parsed = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            match serde_json::from_str::<T>(item.get()) {
                Ok(value) => parsed.push((i, value)),
                Err(_) => self.problem(
                    format!("{path}[{i}]"),
                    format!("must be an object, found {}", describe(item.get())),
                ),
            }
        }
        parsed
    }

    fn timestamp(&mut self, path: &str, field: &Field<'_>) -> Option<Timestamp> {
        let text = field.0?;
        if text == "null" {
            return None;
        }
        if let Ok(number) = serde_json::from_str::<f64>(text) {
            let t = Timestamp::from_epoch_seconds(number);
            if t.is_none() {
                self.problem(path, format!("is not a usable epoch time: {text}"));
            }
            return t;
        }
        match serde_json::from_str::<Cow<'_, str>>(text) {
            Ok(s) => {
                let t = Timestamp::parse_str(&s);
                if t.is_none() {
                    let found = if s.is_empty() {
                        "an empty string".to_owned()
                    } else {
                        format!("\"{}\"", s.chars().take(40).collect::<String>())
                    };
                    self.problem(
                        path,
                        format!("must be an ISO 8601 date-time such as 2024-03-01T12:00:00Z, found {found}"),
                    );
                }
                t
            }
            Err(_) => {
                self.problem(
                    path,
                    format!(
                        "must be a date-time string or epoch number, found {}",
                        describe(text)
                    ),
                );
                None
            }
        }
    }
}

/// Validates a vCon and extracts its index fields, or answers every problem found.
///
/// Never panics, whatever the input: arbitrary bytes and deeply nested JSON are refused by the
/// JSON reader (its nesting limit is 128) before any rule runs.
pub fn parse(bytes: &[u8]) -> Result<ParsedVcon, VconError> {
    let reader = if bytes.len() >= SCAN_FROM_BYTES {
        Reader::Scan
    } else {
        Reader::Serde
    };
    parse_reading(bytes, reader)
}

/// [`parse`] reading with [`scanned_top`] first whatever the size, so tests can hold small
/// documents to [`parse_with_serde`]'s answers; not for use otherwise.
#[doc(hidden)]
pub fn parse_with_scan(bytes: &[u8]) -> Result<ParsedVcon, VconError> {
    parse_reading(bytes, Reader::Scan)
}

/// [`parse`] without [`scanned_top`]: serde_json reads every document. The reference the
/// scanned path is tested against (`tests/it/scanned.rs`); not for use otherwise.
#[doc(hidden)]
pub fn parse_with_serde(bytes: &[u8]) -> Result<ParsedVcon, VconError> {
    parse_reading(bytes, Reader::Serde)
}

/// [`parse`] reads documents at least this large with [`scanned_top`] first. Below it
/// serde_json alone is faster: the scan's set-up and the second read of `parties` and `dialog`
/// cost more than it saves (`cargo xtask bench vcon`, the `with_scan` and `with_serde` rows: a
/// 5 KB vCon 2.9 against 2.6 µs, one with 22 dialogs 8.8 against 6.8; cat1, 270 KB, 115
/// against 178).
const SCAN_FROM_BYTES: usize = 16 << 10;

/// Which reader [`parse_reading`] tries first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reader {
    /// [`scanned_top`], then serde_json for what it does not vouch for.
    Scan,
    /// serde_json alone.
    Serde,
}

fn parse_reading(bytes: &[u8], reader: Reader) -> Result<ParsedVcon, VconError> {
    let text = std::str::from_utf8(bytes).map_err(|err| {
        let prefix = &bytes[..err.valid_up_to()];
        VconError::NotJson {
            line: prefix.iter().filter(|b| **b == b'\n').count() + 1,
            column: prefix.iter().rev().take_while(|b| **b != b'\n').count() + 1,
            reason: "the document is not UTF-8".to_owned(),
        }
    })?;
    // serde's derived struct would also accept a JSON list, field by position.
    let first = text.trim_start().as_bytes().first().copied();
    if first.is_some_and(|b| b != b'{') {
        if let Err(err) = serde_json::from_str::<serde::de::IgnoredAny>(text) {
            return Err(classify(text, &err));
        }
        return Err(VconError::NotAnObject {
            found: kind_of_first(first).to_owned(),
        });
    }
    if reader == Reader::Scan {
        if let Some(top) = scanned_top(text) {
            return check(top);
        }
    }
    // One pass for a document whose lists are lists of objects (every valid vCon); a second,
    // with the lists kept raw, only to describe a document that is not.
    if let Ok(top) = serde_json::from_str::<Top<'_, Objects<Party<'_>>, Objects<Dialog<'_>>>>(text)
    {
        return check(top);
    }
    match serde_json::from_str::<Top<'_, Field<'_>, Field<'_>>>(text) {
        Ok(top) => check(top),
        Err(err) => Err(classify(text, &err)),
    }
}

/// The first pass's [`Top`], from `json_scan`: it validates the whole document and finds its
/// top-level members about half again as fast as serde_json skips them (cat1: 270 KB, mostly a
/// word-level transcript nobody checks), and only `parties` and `dialog` are then read by serde.
/// `None` (the scan cannot vouch for the text, a key comes twice, a list is not a list of
/// objects) leaves the document to serde_json, which answers exactly as before: the
/// scan accepts nothing serde_json refuses (json-scan's tests), and a duplicate key, which serde
/// refuses, is not decided here.
fn scanned_top(text: &str) -> Option<Top<'_, Objects<Party<'_>>, Objects<Dialog<'_>>>> {
    let mut top = Top {
        uuid: Field::default(),
        vcon: Field::default(),
        created_at: Field::default(),
        updated_at: Field::default(),
        subject: Field::default(),
        parties: Objects::default(),
        dialog: Objects::default(),
        analysis: Field::default(),
        attachments: Field::default(),
        group: Field::default(),
    };
    for member in json_scan::object_members(text)? {
        let field = match member.key {
            "uuid" => &mut top.uuid,
            "vcon" => &mut top.vcon,
            "created_at" => &mut top.created_at,
            "updated_at" => &mut top.updated_at,
            "subject" => &mut top.subject,
            "analysis" => &mut top.analysis,
            "attachments" => &mut top.attachments,
            "group" => &mut top.group,
            "parties" => {
                let parties = serde_json::from_str(member.value).ok()?;
                top.parties.0.replace(parties).is_none().then_some(())?;
                continue;
            }
            "dialog" => {
                let dialog = serde_json::from_str(member.value).ok()?;
                top.dialog.0.replace(dialog).is_none().then_some(())?;
                continue;
            }
            _ => continue,
        };
        field.0.replace(member.value).is_none().then_some(())?;
    }
    Some(top)
}

/// Applies every rule to a document read by [`parse`], and extracts the index fields.
fn check<'a, P, D>(top: Top<'a, P, D>) -> Result<ParsedVcon, VconError>
where
    P: List<'a, Party<'a>>,
    D: List<'a, Dialog<'a>>,
{
    let mut c = Checker {
        problems: Vec::new(),
    };
    let uuid = match top.uuid.0 {
        None => {
            c.problem("uuid", "is required: every vCon needs a uuid");
            None
        }
        Some(_) => c
            .string("uuid", &top.uuid)
            .and_then(|text| canonical_uuid(&mut c, &text)),
    };
    if top.uuid.0.is_some_and(|raw| raw == "null") {
        c.problem("uuid", "is required, found null");
    }
    let version = c.string("vcon", &top.vcon).map(Cow::into_owned);
    let created_at = c.timestamp("created_at", &top.created_at);
    let updated_at = c.timestamp("updated_at", &top.updated_at);
    let subject = c.string("subject", &top.subject).map(Cow::into_owned);

    let (parties, parties_present) = top.parties.items(&mut c, "parties");
    let party_count = parties_present.then_some(parties.len());
    let mut ids = Vec::with_capacity(parties.len());
    for (i, party) in &parties {
        // An empty tel means "no tel" (producers write "" for unknown numbers; the fake set
        // does).
        let tel = c
            .string_at(|| format!("parties[{i}].tel"), &party.tel)
            .filter(|t| !t.is_empty());
        if let Some(tel) = &tel {
            if !rules::is_tel(tel) {
                c.problem(
                    format!("parties[{i}].tel"),
                    format!("\"{tel}\" is not a telephone number (digits, optionally with + ( ) - . x #)"),
                );
            }
        }
        ids.push(PartyIds {
            tel: tel.map(Cow::into_owned),
            mailto: c
                .string_at(|| format!("parties[{i}].mailto"), &party.mailto)
                .map(Cow::into_owned),
            name: c
                .string_at(|| format!("parties[{i}].name"), &party.name)
                .map(Cow::into_owned),
        });
    }

    let (dialogs, _) = top.dialog.items(&mut c, "dialog");
    for (i, dialog) in &dialogs {
        check_dialog(&mut c, *i, dialog, party_count);
    }
    for (name, field) in [
        ("analysis", &top.analysis),
        ("attachments", &top.attachments),
        ("group", &top.group),
    ] {
        if let Some(raw) = field.0 {
            if !raw.starts_with('[') {
                c.problem(name, format!("must be a list, found {}", describe(raw)));
            }
        }
    }

    match uuid {
        Some(uuid) if c.problems.is_empty() => Ok(ParsedVcon {
            uuid,
            version,
            created_at,
            updated_at,
            subject,
            parties: ids,
        }),
        _ => Err(VconError::Invalid {
            problems: c.problems,
        }),
    }
}

fn canonical_uuid(c: &mut Checker, text: &str) -> Option<String> {
    let hyphenated = text.len() == 36
        && text.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        });
    if hyphenated {
        if let Ok(parsed) = uuid::Uuid::try_parse(text) {
            return Some(parsed.hyphenated().to_string());
        }
    }
    let shown: String = text.chars().take(60).collect();
    c.problem(
        "uuid",
        if text.is_empty() {
            "must be a UUID such as 018f2b9c-6a4e-7c1d-9f00-0123456789ab, found an empty string"
                .to_owned()
        } else {
            format!("must be a UUID in hyphenated form such as 018f2b9c-6a4e-7c1d-9f00-0123456789ab, found \"{shown}\"")
        },
    );
    None
}

fn check_dialog(c: &mut Checker, i: usize, dialog: &Dialog<'_>, party_count: Option<usize>) {
    let at = |field: &str| format!("dialog[{i}].{field}");
    if let Some(raw) = dialog.duration.0.filter(|r| *r != "null") {
        match serde_json::from_str::<f64>(raw) {
            Ok(d) if d >= 0.0 => {}
            Ok(d) => c.problem(at("duration"), format!("must be a number >= 0, found {d}")),
            Err(_) => c.problem(
                at("duration"),
                format!("must be a number >= 0, found {}", describe(raw)),
            ),
        }
    }
    if let Some(url) = c.string_at(|| at("url"), &dialog.url) {
        if !rules::is_url(&url) {
            c.problem(
                at("url"),
                format!("\"{url}\" is not a URL: it must start with a scheme such as https://"),
            );
        }
    }
    for (name, field) in [
        ("mimetype", &dialog.mimetype),
        ("mediatype", &dialog.mediatype),
    ] {
        if let Some(mediatype) = c.string_at(|| at(name), field) {
            if !rules::is_mediatype(&mediatype) {
                c.problem(
                    at(name),
                    format!("\"{mediatype}\" is not a media type of the form type/subtype"),
                );
            }
        }
    }
    if let Some(alg) = c.string_at(|| at("alg"), &dialog.alg) {
        if !rules::ALGORITHMS.contains(&alg.as_ref()) {
            c.problem(
                at("alg"),
                format!("\"{alg}\" is not one of {}", rules::ALGORITHMS.join(", ")),
            );
        }
    }
    if let Some(raw) = dialog.parties.0.filter(|r| *r != "null") {
        check_party_refs(c, || at("parties"), raw, party_count);
    }
}

/// A dialog's `parties`: an index, or a list of indices or of lists of indices. `path` is
/// written out only for a problem.
fn check_party_refs(
    c: &mut Checker,
    path: impl Fn() -> String,
    raw: &str,
    party_count: Option<usize>,
) {
    let Some(indices) = party_indices(raw) else {
        c.problem(
            path(),
            format!(
                "must be party indices (numbers or lists of numbers), found {}",
                describe(raw)
            ),
        );
        return;
    };
    let Some(count) = party_count else { return };
    let bad: Vec<String> = indices
        .iter()
        .filter(|i| **i < 0 || **i as u64 >= count as u64)
        .map(ToString::to_string)
        .collect();
    if !bad.is_empty() {
        c.problem(
            path(),
            format!(
                "refers to part{} {} but the vCon has {count} part{} (indices 0..{})",
                if bad.len() == 1 { "y" } else { "ies" },
                bad.join(", "),
                if count == 1 { "y" } else { "ies" },
                count.saturating_sub(1)
            ),
        );
    }
}

/// The indices in a dialog's `parties` (`0`, `[0, 1]` or `[[0], 1]`), or `None` when it is
/// something else. Read by looking at each value's first byte rather than with serde's untagged
/// enums, which buffer the value and build an error message for every variant that does not
/// match: most of the time of validating a vCon with many dialogs.
fn party_indices(text: &str) -> Option<Vec<i64>> {
    if !text.starts_with('[') {
        return serde_json::from_str::<i64>(text).ok().map(|i| vec![i]);
    }
    // Most often a flat list, read in one pass.
    if let Ok(flat) = serde_json::from_str::<Vec<i64>>(text) {
        return Some(flat);
    }
    let mut indices = Vec::new();
    for slot in serde_json::from_str::<Vec<&RawValue>>(text).ok()? {
        let slot = slot.get();
        if slot.starts_with('[') {
            indices.extend(serde_json::from_str::<Vec<i64>>(slot).ok()?);
        } else {
            indices.push(serde_json::from_str::<i64>(slot).ok()?);
        }
    }
    Some(indices)
}

/// Tells malformed JSON from JSON that is not an object, and duplicate checked keys.
fn kind_of_first(first: Option<u8>) -> &'static str {
    match first {
        Some(b'[') => "a list",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

fn classify(text: &str, err: &serde_json::Error) -> VconError {
    if err.is_data() && text.trim_start().starts_with('{') {
        // A data error inside an object: a key given twice.
        return VconError::Invalid {
            problems: vec![Problem {
                path: "(document)".to_owned(),
                message: err.to_string(),
            }],
        };
    }
    VconError::NotJson {
        line: err.line(),
        column: err.column(),
        reason: err.to_string(),
    }
}
