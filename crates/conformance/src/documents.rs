//! Generated vCon documents: valid, varied, each with a fresh uuid.

use plugin_loader::VconRecord;

/// A generated vCon with the index fields a host would extract.
#[derive(Debug, Clone)]
pub struct Document {
    /// Its uuid (random v4, canonical lowercase).
    pub uuid: String,
    /// Its subject.
    pub subject: Option<String>,
    /// `created_at` in microseconds since the epoch.
    pub created_at_us: i64,
    /// The JSON bytes.
    pub json: Vec<u8>,
}

impl Document {
    /// A small document (about 1 KB) whose content depends on `revision`, so two revisions of
    /// one uuid differ.
    pub fn small(revision: u32) -> Self {
        Self::with_uuid(&fresh_uuid(), revision, 0, Some("conformance check"))
    }

    /// A document of roughly `bytes` bytes (the padding is a dialog body).
    pub fn sized(bytes: usize) -> Self {
        Self::with_uuid(&fresh_uuid(), 0, bytes, Some("a large document"))
    }

    /// A document for a given uuid, revision, padding and subject.
    pub fn with_uuid(uuid: &str, revision: u32, padding: usize, subject: Option<&str>) -> Self {
        // Unix time of 2024-03-01T12:00:00Z plus the revision in seconds, so documents differ
        // in created_at too.
        let created_at_us = (1_709_294_400 + i64::from(revision)) * 1_000_000;
        let created = format!("2024-03-01T12:00:{:02}.000+00:00", revision % 60);
        let body: String = "word ".repeat(padding / 5 + 1);
        let json = serde_json::json!({
            "vcon": "0.0.1",
            "uuid": uuid,
            "created_at": created,
            "subject": subject,
            "parties": [
                {"tel": "+15551230000", "name": "Ann Example", "mailto": "ann@example.com"},
                {"tel": "+15559870000", "name": "Bob Ünïcödé 电话"}
            ],
            "dialog": [{
                "type": "text",
                "start": created,
                "parties": [0, 1],
                "body": body,
                "mimetype": "text/plain"
            }],
            "analysis": [],
            "attachments": [],
            "x-extension": {"revision": revision, "escapes": "quote \" backslash \\ tab \t nul-ish \u{1}"},
        });
        Self {
            uuid: uuid.to_owned(),
            subject: subject.map(str::to_owned),
            created_at_us,
            json: json.to_string().into_bytes(),
        }
    }

    /// The record a host would pass to `save`.
    pub fn record(&self) -> VconRecord<'_> {
        VconRecord::new(&self.uuid, &self.json, self.created_at_us)
            .with_subject(self.subject.as_deref())
    }

    /// The document parsed, for comparing what a storage gives back.
    pub fn value(&self) -> serde_json::Value {
        serde_json::from_slice(&self.json).unwrap_or(serde_json::Value::Null)
    }
}

/// A fresh random uuid (canonical lowercase).
pub fn fresh_uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}
