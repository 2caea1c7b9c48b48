//! `links.tag`: adds tags to the vCon's `tags` attachment.
//!
//! Python-compatible: each configured tag `t` is added as `"t:t"` (name and value equal) to
//! the attachment with `purpose: "tags"` (or legacy `type: "tags"`), created with
//! `encoding: "json"` when absent. Default tags `["iron", "maiden"]`, as in the Python module.
//! A tag already present is not added twice (the Python module appends duplicates; re-running a
//! chain after a crash must not change the result).

use super::{parse_options, Link, LinkError, Outcome, WorkingVcon};

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    #[serde(default = "default_tags")]
    tags: Vec<String>,
}

fn default_tags() -> Vec<String> {
    vec!["iron".to_owned(), "maiden".to_owned()]
}

/// The `tag` link.
#[derive(Debug)]
pub(super) struct Tag {
    tags: Vec<String>,
}

impl Tag {
    pub(super) fn from_options(options: serde_json::Value) -> Result<Self, String> {
        let options: Options = parse_options("tag", options)?;
        Ok(Self { tags: options.tags })
    }
}

impl Link for Tag {
    fn run(&self, vcon: &mut WorkingVcon) -> Result<Outcome, LinkError> {
        let doc = vcon
            .value_mut()?
            .as_object_mut()
            .ok_or_else(|| LinkError("the vCon is not a JSON object".into()))?;
        let attachments = doc
            .entry("attachments")
            .or_insert_with(|| serde_json::Value::Array(Vec::new()));
        if attachments.is_null() {
            *attachments = serde_json::Value::Array(Vec::new());
        }
        let attachments = attachments
            .as_array_mut()
            .ok_or_else(|| LinkError("attachments is not a list".into()))?;
        let position = attachments.iter().position(|a| {
            let purpose = a.get("purpose").or_else(|| a.get("type"));
            purpose.and_then(|p| p.as_str()) == Some("tags")
        });
        let attachment = match position {
            Some(i) => &mut attachments[i],
            None => {
                attachments.push(serde_json::json!({
                    "purpose": "tags",
                    "body": [],
                    "encoding": "json",
                }));
                let last = attachments.len() - 1;
                &mut attachments[last]
            }
        };
        // The body is a list, or a JSON string holding one (encoding: json).
        let mut body: Vec<serde_json::Value> = match attachment.get("body") {
            Some(serde_json::Value::Array(items)) => items.clone(),
            Some(serde_json::Value::String(text)) => serde_json::from_str(text)
                .map_err(|err| LinkError(format!("tags attachment body is not a list: {err}")))?,
            None | Some(serde_json::Value::Null) => Vec::new(),
            Some(_) => return Err(LinkError("tags attachment body is not a list".into())),
        };
        let was_string = matches!(attachment.get("body"), Some(serde_json::Value::String(_)));
        for tag in &self.tags {
            let entry = serde_json::Value::String(format!("{tag}:{tag}"));
            if !body.contains(&entry) {
                body.push(entry);
            }
        }
        attachment["body"] = if was_string {
            serde_json::Value::String(serde_json::Value::Array(body).to_string())
        } else {
            serde_json::Value::Array(body)
        };
        Ok(Outcome::Continue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(tags: &[&str], doc: serde_json::Value) -> serde_json::Value {
        let link = Tag::from_options(serde_json::json!({ "tags": tags })).unwrap();
        let mut vcon = WorkingVcon::new("u".into(), doc.to_string().into_bytes().into());
        assert_eq!(link.run(&mut vcon).unwrap(), Outcome::Continue);
        let (bytes, changed) = vcon.into_json().unwrap();
        assert!(changed);
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn adds_a_tags_attachment_the_python_way() {
        let out = run(&["iron"], serde_json::json!({"uuid": "u"}));
        assert_eq!(
            out["attachments"],
            serde_json::json!([{"purpose": "tags", "body": ["iron:iron"], "encoding": "json"}])
        );
    }

    #[test]
    fn extends_an_existing_one_without_duplicates() {
        let doc = serde_json::json!({"attachments": [{"type": "tags", "body": "[\"a:b\"]", "encoding": "json"}]});
        let out = run(&["x", "x"], doc);
        assert_eq!(out["attachments"][0]["body"], "[\"a:b\",\"x:x\"]");
        assert_eq!(super::super::tag_names(&out), ["a", "x"]);
    }

    #[test]
    fn defaults_match_python() {
        let link = Tag::from_options(serde_json::json!({})).unwrap();
        assert_eq!(link.tags, ["iron", "maiden"]);
        assert!(Tag::from_options(serde_json::json!({"tagz": []})).is_err());
    }
}
