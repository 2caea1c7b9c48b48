//! The `webhook` storage plugin: vCons stored through a REST API, the vCon Server guide's
//! "API storage" (and the shape of the vcon-mcp server's REST API).
//!
//! # The API it expects
//!
//! | operation | request | answer |
//! |---|---|---|
//! | `save` | `POST {base_url}/vcons` with the vCon's JSON | any `2xx` |
//! | `get` | `GET {base_url}/vcons/{uuid}` | `200` with the vCon (or `{"vcon": {...}}`); `404`: not stored |
//! | `delete` | `DELETE {base_url}/vcons/{uuid}` | any `2xx`: removed; `404`: was not stored |
//! | `exists` | `GET {base_url}/vcons/{uuid}` | as `get` |
//!
//! Every request carries `Authorization: Bearer {api_key}` (when set) and the configured
//! `headers`. `save` must be an upsert on the server (a repeated `POST` of one uuid replaces
//! it), as the host retries saves.
//!
//! # Failures
//!
//! Requests go through the SDK's HTTP client (`plugin_sdk::http`): each is bounded by
//! `timeout`; connection errors, time-outs, `408`, `429` and `5xx` are retried `retries` times
//! with back-off (honouring `Retry-After`) and then reported as `Unavailable`, so the host
//! retries later; `401`/`403` are `Unauthorized`; other `4xx` are `InvalidInput` quoting the
//! server's answer. Uuids are validated as 8-4-4-4-12 hex before they go into a URL.
//!
//! # Differences from the Python webhook
//!
//! The Python server's `storage.webhook` POSTs to a list of `webhook-urls`, ignores non-`2xx`
//! answers and has neither `get` nor `delete`. This plugin is the API storage instead: one
//! base URL, errors reported, vCons readable and removable.

mod error;
mod options;
mod storage;

pub use options::Options;
pub use storage::WebhookStorage;

plugin_sdk::export_storage_plugin!(WebhookStorage);
