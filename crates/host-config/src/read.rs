//! From the YAML tree to a validated [`Config`], collecting every problem with its line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::diagnostic::Diagnostic;
use crate::env::Lookup;
use crate::model::{
    BrokerUrl, ChainConfig, Config, HostSettings, LinkConfig, PluginSource, RetryPolicy, Secret,
    StorageConfig,
};
use crate::modules::{link_module, storage_module, LinkModule, StorageModule};
use crate::yaml::{Entry, Node, Value};

/// Sections of the Python server's config that vcon-host reads nowhere yet.
const PYTHON_ONLY_SECTIONS: &[(&str, &str)] = &[
    (
        "tracers",
        "tracers are not supported yet; chains run without them",
    ),
    (
        "imports",
        "imports load Python code, which vcon-host does not run",
    ),
    (
        "followers",
        "followers (pulling vCons from another server) are not supported yet",
    ),
];

/// Reads a whole config. `root` is `None` for an empty file (which, as in the Python server,
/// is a config with nothing in it).
pub(crate) fn read(
    file: &Path,
    root: Option<&Node>,
    env: &Lookup<'_>,
) -> (Option<Config>, Vec<Diagnostic>, Vec<Diagnostic>) {
    let mut reader = Reader {
        file,
        env,
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    let empty = Vec::new();
    let sections: &[Entry] = match root.map(|n| &n.value) {
        None | Some(Value::Null) => &empty,
        Some(Value::Map(entries)) => entries,
        Some(_) => {
            let node = root.expect("matched Some");
            reader.error(node.line, "", format!(
                "the file must be a mapping of sections (storages:, links:, chains:, host:), found {}",
                node.type_name()
            ));
            return (None, reader.errors, reader.warnings);
        }
    };
    for entry in sections {
        match entry.key.as_str() {
            "storages" | "links" | "chains" | "ingress_auth" | "host" => {}
            other => match PYTHON_ONLY_SECTIONS.iter().find(|(name, _)| *name == other) {
                Some((_, why)) => reader.warn(entry.key_line, other, format!("{why}; section ignored")),
                None => reader.warn(
                    entry.key_line,
                    other,
                    "unknown section, ignored (sections: storages, links, chains, ingress_auth, host)",
                ),
            },
        }
    }
    let section = |name: &str| sections.iter().find(|e| e.key == name);

    let host = reader.host(section("host"));
    let (storages, skipped_storages) = reader.storages(section("storages"));
    let (links, skipped_links) = reader.links(section("links"));
    let chains = reader.chains(
        section("chains"),
        &storages,
        &skipped_storages,
        &links,
        &skipped_links,
    );
    let ingress_auth = reader.ingress_auth(section("ingress_auth"));
    reader.refuse_storages_on_the_broker_file(&host.broker, &storages);
    if chains.iter().all(|c| !c.enabled) {
        reader.warn(
            0,
            "chains",
            "no enabled chain: vcon-host will store nothing",
        );
    }
    let config = Config {
        file: file.to_owned(),
        host,
        storages,
        links,
        chains,
        ingress_auth,
    };
    let config = reader.errors.is_empty().then_some(config);
    (config, reader.errors, reader.warnings)
}

struct Reader<'a> {
    file: &'a Path,
    env: &'a Lookup<'a>,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
}

impl Reader<'_> {
    fn diagnostic(&self, line: usize, key: &str, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            file: self.file.to_owned(),
            line,
            key: key.to_owned(),
            message: message.into(),
        }
    }

    fn error(&mut self, line: usize, key: &str, message: impl Into<String>) {
        let d = self.diagnostic(line, key, message);
        self.errors.push(d);
    }

    fn warn(&mut self, line: usize, key: &str, message: impl Into<String>) {
        let d = self.diagnostic(line, key, message);
        self.warnings.push(d);
    }

    /// A section or item that must be a mapping; `null` counts as empty.
    fn entries<'n>(&mut self, node: &'n Node, key: &str) -> &'n [Entry] {
        match &node.value {
            Value::Map(entries) => entries,
            Value::Null => &[],
            _ => {
                self.error(
                    node.line,
                    key,
                    format!("expected a mapping, found {}", node.type_name()),
                );
                &[]
            }
        }
    }

    fn warn_unknown_keys(&mut self, entries: &[Entry], path: &str, known: &[&str]) {
        for entry in entries.iter().filter(|e| !known.contains(&e.key.as_str())) {
            self.warn(
                entry.key_line,
                &format!("{path}.{}", entry.key),
                format!("unknown key, ignored (known: {})", known.join(", ")),
            );
        }
    }

    fn text(&mut self, node: &Node, key: &str) -> Option<String> {
        match &node.value {
            Value::Str(s) if !s.trim().is_empty() => Some(s.clone()),
            Value::Int(i) => Some(i.to_string()),
            _ => {
                self.error(
                    node.line,
                    key,
                    format!("expected text, found {}", node.type_name()),
                );
                None
            }
        }
    }

    /// A list of names; a single name is taken as a list of one (the Python server would
    /// iterate its characters).
    fn names(&mut self, node: &Node, key: &str) -> Vec<String> {
        match &node.value {
            Value::Null => Vec::new(),
            Value::Seq(items) => items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| match &item.value {
                    Value::Map(_) => {
                        self.error(item.line, &format!("{key}[{i}]"), "expected a name; options cannot be given inline here, define the item in its own section and list its name");
                        None
                    }
                    _ => self.text(item, &format!("{key}[{i}]")),
                })
                .collect(),
            Value::Str(_) | Value::Int(_) => self.text(node, key).into_iter().collect(),
            _ => {
                self.error(node.line, key, format!("expected a list of names, found {}", node.type_name()));
                Vec::new()
            }
        }
    }

    fn count(&mut self, node: &Node, key: &str, min: i64) -> Option<usize> {
        match &node.value {
            Value::Int(i) if *i >= min => usize::try_from(*i).ok(),
            Value::Str(s) => match s.trim().parse::<i64>() {
                Ok(i) if i >= min => usize::try_from(i).ok(),
                _ => {
                    self.error(
                        node.line,
                        key,
                        format!("expected a whole number ≥ {min}, found \"{s}\""),
                    );
                    None
                }
            },
            _ => {
                self.error(
                    node.line,
                    key,
                    format!(
                        "expected a whole number ≥ {min}, found {}",
                        node.type_name()
                    ),
                );
                None
            }
        }
    }

    fn flag(&mut self, node: &Node, key: &str) -> Option<bool> {
        match &node.value {
            Value::Bool(b) => Some(*b),
            Value::Int(0) => Some(false),
            Value::Int(1) => Some(true),
            Value::Str(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Some(true),
                "false" | "0" | "no" | "off" => Some(false),
                _ => {
                    self.error(
                        node.line,
                        key,
                        format!("expected true or false, found \"{s}\""),
                    );
                    None
                }
            },
            _ => {
                self.error(
                    node.line,
                    key,
                    format!("expected true or false, found {}", node.type_name()),
                );
                None
            }
        }
    }

    /// A duration: a number of seconds, or text such as `250ms`, `30s`, `5m`, `1h 30m`.
    fn duration(&mut self, node: &Node, key: &str) -> Option<Duration> {
        let parsed = match &node.value {
            Value::Int(i) => u64::try_from(*i).ok().map(Duration::from_secs),
            Value::Float(f) => Duration::try_from_secs_f64(*f).ok(),
            Value::Str(s) => parse_duration(s),
            _ => None,
        };
        if parsed.is_none() {
            self.error(
                node.line,
                key,
                format!(
                    "expected a duration (seconds, or text like 250ms, 30s, 5m, 1h), found {}",
                    match &node.value {
                        Value::Str(s) => format!("\"{s}\""),
                        _ => node.type_name().into(),
                    }
                ),
            );
        }
        parsed
    }

    /// A time to live, where 0 means "none" (as `VCON_DLQ_EXPIRY=0` does).
    fn ttl(&mut self, node: &Node, key: &str) -> Option<Option<Duration>> {
        self.duration(node, key)
            .map(|d| Some(d).filter(|d| !d.is_zero()))
    }

    /// An environment variable as a node, so it is checked by the same code as the file.
    fn env_node(&self, name: &str) -> Option<Node> {
        (self.env)(name)
            .filter(|v| !v.trim().is_empty())
            .map(|v| Node {
                line: 0,
                value: match v.trim().parse::<i64>() {
                    Ok(i) => Value::Int(i),
                    Err(_) => Value::Str(v),
                },
            })
    }

    fn host(&mut self, section: Option<&Entry>) -> HostSettings {
        const KNOWN: &[&str] = &[
            "bind",
            "api_token",
            "api_token_file",
            "header_name",
            "root_path",
            "broker",
            "plugin_dirs",
            "workers",
            "batch_size",
            "hot_ttl",
            "dlq_ttl",
            "retry",
            "storage_concurrency",
            "max_body_bytes",
            "api_busy_poll_us",
            "keep_whitespace",
        ];
        let entries: &[Entry] = match section {
            Some(entry) => self.entries(&entry.value, "host"),
            None => &[],
        };
        for entry in entries.iter().filter(|e| !KNOWN.contains(&e.key.as_str())) {
            self.error(
                entry.key_line,
                &format!("host.{}", entry.key),
                format!("unknown host setting (known: {})", KNOWN.join(", ")),
            );
        }
        // A key from the file, else the Python server's environment variable, as a node.
        let setting = |name: &str, var: Option<&str>| -> Option<(Node, String)> {
            entries
                .iter()
                .find(|e| e.key == name)
                .map(|e| (e.value.clone(), format!("host.{name}")))
                .filter(|(n, _)| n.value != Value::Null)
                .or_else(|| {
                    let var = var?;
                    self.env_node(var)
                        .map(|n| (n, format!("environment variable {var}")))
                })
        };

        let mut host = HostSettings {
            bind: "127.0.0.1:8000".into(),
            api_tokens: Vec::new(),
            header_name: "x-conserver-api-token".into(),
            root_path: "/api".into(),
            broker: BrokerUrl::Sqlite(PathBuf::from("data/broker.sqlite")),
            plugin_dirs: Vec::new(),
            workers: 0,
            batch_size: 16,
            hot_ttl: None,
            dlq_ttl: Some(Duration::from_secs(604_800)),
            retry: RetryPolicy::default(),
            storage_concurrency: 4,
            max_body_bytes: 10 * 1024 * 1024,
            api_busy_poll_us: 1000,
            keep_whitespace: false,
        };
        let bind = setting("bind", Some("VCON_HOST_BIND"));
        let token = setting("api_token", Some("CONSERVER_API_TOKEN"));
        let token_file = setting("api_token_file", Some("CONSERVER_API_TOKEN_FILE"));
        let header = setting("header_name", Some("CONSERVER_HEADER_NAME"));
        let root_path = setting("root_path", Some("API_ROOT_PATH"));
        let broker = setting("broker", Some("REDIS_URL"));
        let plugin_dirs = setting("plugin_dirs", None);
        let workers = setting("workers", Some("CONSERVER_WORKERS"));
        let batch = setting("batch_size", None);
        let hot_ttl = setting("hot_ttl", Some("VCON_REDIS_EXPIRY"));
        let dlq_ttl = setting("dlq_ttl", Some("VCON_DLQ_EXPIRY"));
        let retry = setting("retry", None);
        let concurrency = setting("storage_concurrency", None);
        let max_body = setting("max_body_bytes", Some("VCON_MAX_BODY_BYTES"));
        let busy_poll = setting("api_busy_poll_us", Some("VCON_API_BUSY_POLL_US"));
        let keep_whitespace = setting("keep_whitespace", Some("VCON_KEEP_WHITESPACE"));

        if let Some((node, key)) = bind {
            if let Some(bind) = self.text(&node, &key) {
                host.bind = bind;
            }
        }
        if let Some((node, key)) = token {
            match &node.value {
                Value::Seq(_) => host
                    .api_tokens
                    .extend(self.names(&node, &key).into_iter().map(Secret::new)),
                _ => host
                    .api_tokens
                    .extend(self.text(&node, &key).map(Secret::new)),
            }
        }
        if let Some((node, key)) = token_file {
            if let Some(path) = self.text(&node, &key) {
                match std::fs::read_to_string(&path) {
                    Ok(text) => host.api_tokens.extend(
                        text.lines()
                            .map(str::trim)
                            .filter(|l| !l.is_empty())
                            .map(Secret::new),
                    ),
                    Err(err) => self.error(
                        node.line,
                        &key,
                        format!("cannot read the token file {path}: {err}"),
                    ),
                }
            }
        }
        if let Some((node, key)) = header {
            if let Some(name) = self.text(&node, &key) {
                host.header_name = name.to_ascii_lowercase();
            }
        }
        if let Some((node, key)) = root_path {
            if let Some(path) = self.text(&node, &key) {
                host.root_path = path;
            }
        }
        if let Some((node, key)) = broker {
            if let Some(url) = self.text(&node, &key) {
                host.broker = parse_broker(&url);
            }
        }
        if let Some((node, key)) = plugin_dirs {
            host.plugin_dirs = self
                .names(&node, &key)
                .into_iter()
                .map(PathBuf::from)
                .collect();
        }
        if let Some((node, key)) = workers {
            host.workers = self.count(&node, &key, 0).unwrap_or(host.workers);
        }
        if let Some((node, key)) = batch {
            host.batch_size = self.count(&node, &key, 1).unwrap_or(host.batch_size);
        }
        if let Some((node, key)) = hot_ttl {
            host.hot_ttl = self.ttl(&node, &key).unwrap_or(host.hot_ttl);
        }
        if let Some((node, key)) = dlq_ttl {
            host.dlq_ttl = self.ttl(&node, &key).unwrap_or(host.dlq_ttl);
        }
        if let Some((node, key)) = concurrency {
            host.storage_concurrency = self
                .count(&node, &key, 1)
                .unwrap_or(host.storage_concurrency);
        }
        if let Some((node, key)) = retry {
            host.retry = self.retry(&node, &key);
        }
        if let Some((node, key)) = max_body {
            host.max_body_bytes = self.count(&node, &key, 1).unwrap_or(host.max_body_bytes);
        }
        if let Some((node, key)) = busy_poll {
            host.api_busy_poll_us = self
                .count(&node, &key, 0)
                .and_then(|us| u64::try_from(us).ok())
                .unwrap_or(host.api_busy_poll_us);
        }
        if let Some((node, key)) = keep_whitespace {
            host.keep_whitespace = self.flag(&node, &key).unwrap_or(host.keep_whitespace);
        }
        host
    }

    fn retry(&mut self, node: &Node, key: &str) -> RetryPolicy {
        let mut policy = RetryPolicy::default();
        let entries = self.entries(node, key);
        self.warn_unknown_keys(
            entries,
            key,
            &["max_attempts", "initial_backoff", "max_backoff", "jitter"],
        );
        for entry in entries {
            let k = format!("{key}.{}", entry.key);
            match entry.key.as_str() {
                "max_attempts" => {
                    if let Some(n) = self.count(&entry.value, &k, 1) {
                        policy.max_attempts = u32::try_from(n).unwrap_or(u32::MAX);
                    }
                }
                "initial_backoff" => {
                    policy.initial_backoff = self
                        .duration(&entry.value, &k)
                        .unwrap_or(policy.initial_backoff)
                }
                "max_backoff" => {
                    policy.max_backoff = self
                        .duration(&entry.value, &k)
                        .unwrap_or(policy.max_backoff)
                }
                "jitter" => policy.jitter = self.flag(&entry.value, &k).unwrap_or(policy.jitter),
                _ => {}
            }
        }
        if policy.max_backoff < policy.initial_backoff {
            self.error(
                node.line,
                key,
                "max_backoff is shorter than initial_backoff",
            );
        }
        policy
    }

    /// The storages, and the names of those skipped because their module is Python-only.
    fn storages(&mut self, section: Option<&Entry>) -> (Vec<StorageConfig>, Vec<String>) {
        let mut storages = Vec::new();
        let mut skipped = Vec::new();
        let Some(section) = section else {
            return (storages, skipped);
        };
        for item in self.entries(&section.value, "storages") {
            let path = format!("storages.{}", item.key);
            let fields = self.entries(&item.value, &path);
            self.warn_unknown_keys(
                fields,
                &path,
                &["module", "plugin", "sha256", "options", "max_concurrency"],
            );
            let field = |name: &str| fields.iter().find(|e| e.key == name);
            let source = match (field("module"), field("plugin")) {
                (Some(_), Some(plugin)) => {
                    self.error(
                        plugin.key_line,
                        &format!("{path}.plugin"),
                        "give either module: (a plugin name) or plugin: (a file), not both",
                    );
                    continue;
                }
                (None, None) => {
                    self.error(
                        item.key_line,
                        &path,
                        "missing module: (e.g. module: storage.postgres) or plugin: (a .so file)",
                    );
                    continue;
                }
                (None, Some(plugin)) => {
                    let Some(file) = self.text(&plugin.value, &format!("{path}.plugin")) else {
                        continue;
                    };
                    let sha256 = field("sha256").and_then(|e| {
                        let key = format!("{path}.sha256");
                        let hex = self.text(&e.value, &key)?.to_ascii_lowercase();
                        if hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
                            Some(hex)
                        } else {
                            self.error(
                                e.key_line,
                                &key,
                                "expected 64 hex digits (the output of sha256sum)",
                            );
                            None
                        }
                    });
                    (
                        file.clone(),
                        PluginSource::File {
                            path: PathBuf::from(file),
                            sha256,
                        },
                    )
                }
                (Some(module), None) => {
                    let key = format!("{path}.module");
                    let Some(name) = self.text(&module.value, &key) else {
                        continue;
                    };
                    match storage_module(&name) {
                        StorageModule::Plugin(plugin) => (
                            name.clone(),
                            PluginSource::Module {
                                plugin,
                                module: name,
                            },
                        ),
                        StorageModule::NotYetSupported(what) => {
                            self.warn(module.key_line, &key, format!(
                                "{name}: vcon-host has no {what} plugin yet; storage {} is skipped and chains listing it write to their other storages",
                                item.key
                            ));
                            skipped.push(item.key.clone());
                            continue;
                        }
                        StorageModule::Unknown => {
                            self.error(module.key_line, &key, format!(
                                "{name} is not a storage plugin name; write the plugin's name (postgres, file, sqlite, ...), storage.NAME, or plugin: PATH for a .so file"
                            ));
                            continue;
                        }
                    }
                }
            };
            if field("sha256").is_some() && matches!(source.1, PluginSource::Module { .. }) {
                self.warn(
                    item.key_line,
                    &format!("{path}.sha256"),
                    "sha256 pins a plugin: file; with module: it is ignored",
                );
            }
            let options = match field("options") {
                None => serde_json::json!({}),
                Some(e) => match &e.value.value {
                    Value::Null => serde_json::json!({}),
                    Value::Map(_) => e.value.to_json(),
                    _ => {
                        self.error(
                            e.key_line,
                            &format!("{path}.options"),
                            format!(
                                "expected a mapping of options, found {}",
                                e.value.type_name()
                            ),
                        );
                        continue;
                    }
                },
            };
            let max_concurrency = field("max_concurrency")
                .and_then(|e| self.count(&e.value, &format!("{path}.max_concurrency"), 1));
            storages.push(StorageConfig {
                name: item.key.clone(),
                module: source.0,
                source: source.1,
                options,
                max_concurrency,
                line: item.key_line,
            });
        }
        (storages, skipped)
    }

    /// The links, and the names of those whose module vcon-host does not implement yet.
    fn links(&mut self, section: Option<&Entry>) -> (Vec<LinkConfig>, Vec<String>) {
        let mut links = Vec::new();
        let mut skipped = Vec::new();
        let Some(section) = section else {
            return (links, skipped);
        };
        for item in self.entries(&section.value, "links") {
            let path = format!("links.{}", item.key);
            let fields = self.entries(&item.value, &path);
            self.warn_unknown_keys(fields, &path, &["module", "options", "pip_name"]);
            let Some(module_entry) = fields.iter().find(|e| e.key == "module") else {
                self.error(
                    item.key_line,
                    &path,
                    "missing module: (e.g. module: links.tag)",
                );
                continue;
            };
            let key = format!("{path}.module");
            let Some(module) = self.text(&module_entry.value, &key) else {
                continue;
            };
            let kind = match link_module(&module) {
                LinkModule::BuiltIn(kind) => kind,
                LinkModule::NotYetSupported => {
                    self.warn(module_entry.key_line, &key, format!(
                        "{module} is not built into vcon-host yet; chains using link {} are disabled",
                        item.key
                    ));
                    skipped.push(item.key.clone());
                    continue;
                }
                LinkModule::Unknown => {
                    self.error(module_entry.key_line, &key, format!(
                        "{module} is not a link vcon-host knows; built in: links.tag, links.sampler, links.expire_vcon, links.tag_router"
                    ));
                    continue;
                }
            };
            let options = fields
                .iter()
                .find(|e| e.key == "options")
                .map_or(serde_json::Value::Null, |e| e.value.to_json());
            if !(options.is_null() || options.is_object()) {
                self.error(
                    item.key_line,
                    &format!("{path}.options"),
                    "expected a mapping of options",
                );
                continue;
            }
            links.push(LinkConfig {
                name: item.key.clone(),
                module,
                kind,
                options,
                line: item.key_line,
            });
        }
        (links, skipped)
    }

    fn chains(
        &mut self,
        section: Option<&Entry>,
        storages: &[StorageConfig],
        skipped_storages: &[String],
        links: &[LinkConfig],
        skipped_links: &[String],
    ) -> Vec<ChainConfig> {
        let mut chains: Vec<ChainConfig> = Vec::new();
        let Some(section) = section else {
            return chains;
        };
        for item in self.entries(&section.value, "chains") {
            let path = format!("chains.{}", item.key);
            let fields = self.entries(&item.value, &path);
            self.warn_unknown_keys(
                fields,
                &path,
                &[
                    "links",
                    "storages",
                    "ingress_lists",
                    "egress_lists",
                    "enabled",
                    "timeout",
                    "tracers",
                ],
            );
            let mut chain = ChainConfig {
                name: item.key.clone(),
                links: Vec::new(),
                storages: Vec::new(),
                ingress_lists: Vec::new(),
                egress_lists: Vec::new(),
                enabled: true,
                timeout: None,
                line: item.key_line,
            };
            for field in fields {
                let key = format!("{path}.{}", field.key);
                match field.key.as_str() {
                    "links" => {
                        for (i, name) in self.names(&field.value, &key).into_iter().enumerate() {
                            let line = item_line(&field.value, i);
                            if skipped_links.contains(&name) {
                                if chain.enabled {
                                    self.warn(line, &key, format!("link {name} is not supported yet, so chain {} is disabled", chain.name));
                                }
                                chain.enabled = false;
                            } else if links.iter().any(|l| l.name == name) {
                                chain.links.push(name);
                            } else {
                                self.error(
                                    line,
                                    &format!("{key}[{i}]"),
                                    format!(
                                        "link {name} is not defined under links: (defined: {})",
                                        list_or_none(links.iter().map(|l| l.name.as_str()))
                                    ),
                                );
                            }
                        }
                    }
                    "storages" => {
                        for (i, name) in self.names(&field.value, &key).into_iter().enumerate() {
                            let line = item_line(&field.value, i);
                            if skipped_storages.contains(&name) {
                                self.warn(line, &format!("{key}[{i}]"), format!("storage {name} is skipped (not supported yet); chain {} writes to its other storages", chain.name));
                            } else if storages.iter().any(|s| s.name == name) {
                                if chain.storages.contains(&name) {
                                    self.error(
                                        line,
                                        &format!("{key}[{i}]"),
                                        format!("storage {name} is listed twice"),
                                    );
                                } else {
                                    chain.storages.push(name);
                                }
                            } else {
                                self.error(
                                    line,
                                    &format!("{key}[{i}]"),
                                    format!(
                                    "storage {name} is not defined under storages: (defined: {})",
                                    list_or_none(storages.iter().map(|s| s.name.as_str()))
                                ),
                                );
                            }
                        }
                    }
                    "ingress_lists" => chain.ingress_lists = self.names(&field.value, &key),
                    "egress_lists" => chain.egress_lists = self.names(&field.value, &key),
                    // `&=`: a chain already disabled by an unsupported link stays disabled.
                    "enabled" => chain.enabled &= self.flag(&field.value, &key).unwrap_or(true),
                    "timeout" => {
                        chain.timeout = match &field.value.value {
                            Value::Null => None,
                            _ => self.duration(&field.value, &key).filter(|d| !d.is_zero()),
                        }
                    }
                    "tracers" => self.warn(
                        field.key_line,
                        &key,
                        "tracers are not supported yet; ignored",
                    ),
                    _ => {}
                }
            }
            for list in chain.ingress_lists.iter().chain(&chain.egress_lists) {
                if list.starts_with("DLQ:") {
                    self.error(chain.line, &path, format!("list {list}: names starting with DLQ: are the dead-letter lists; choose another name"));
                }
            }
            if chain.enabled && chain.ingress_lists.is_empty() {
                self.warn(
                    chain.line,
                    &path,
                    "no ingress_lists: this chain never receives work",
                );
            }
            if chain.enabled {
                for list in &chain.ingress_lists {
                    if let Some(other) = chains
                        .iter()
                        .find(|c| c.enabled && c.ingress_lists.contains(list))
                    {
                        self.error(chain.line, &format!("{path}.ingress_lists"), format!(
                            "ingress list {list} is also taken by chain {} (line {}); two enabled chains cannot share an ingress list (disable one with enabled: false)",
                            other.name, other.line
                        ));
                    }
                }
            }
            chains.push(chain);
        }
        chains
    }

    /// Two SQLite connections from two copies of SQLite (the host's and a plugin's) on one file
    /// break its locking, so a storage may not use the embedded broker's file.
    fn refuse_storages_on_the_broker_file(
        &mut self,
        broker: &BrokerUrl,
        storages: &[StorageConfig],
    ) {
        let BrokerUrl::Sqlite(broker) = broker else {
            return;
        };
        let Some(broker) = same_file_key(broker) else {
            return;
        };
        for storage in storages {
            let Some(path) = storage.options.get("path").and_then(|p| p.as_str()) else {
                continue;
            };
            if same_file_key(Path::new(path)).as_ref() == Some(&broker) {
                self.error(storage.line, &format!("storages.{}.options.path", storage.name), format!(
                    "{path} is the embedded broker's file (host.broker); give the storage a file of its own"
                ));
            }
        }
    }

    fn ingress_auth(&mut self, section: Option<&Entry>) -> BTreeMap<String, Vec<Secret>> {
        let mut auth = BTreeMap::new();
        let Some(section) = section else { return auth };
        for item in self.entries(&section.value, "ingress_auth") {
            let key = format!("ingress_auth.{}", item.key);
            let keys = self
                .names(&item.value, &key)
                .into_iter()
                .map(Secret::new)
                .collect();
            auth.insert(item.key.clone(), keys);
        }
        auth
    }
}

/// The line of the `i`th item of a list node (the node's own line for a single value).
fn item_line(node: &Node, i: usize) -> usize {
    match &node.value {
        Value::Seq(items) => items.get(i).map_or(node.line, |n| n.line),
        _ => node.line,
    }
}

fn list_or_none<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<&str> = names.collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// `redis://` and `rediss://` URLs name a Redis broker; anything else is the embedded broker's
/// file (`sqlite:` and `sqlite://` prefixes allowed).
fn parse_broker(url: &str) -> BrokerUrl {
    if url.starts_with("redis://") || url.starts_with("rediss://") || url.starts_with("unix://") {
        BrokerUrl::Redis(url.to_owned())
    } else {
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        BrokerUrl::Sqlite(PathBuf::from(path))
    }
}

/// A path made absolute and lexically normalised (`./data/x` = `data/x`), to tell two names of
/// one file apart without touching the disk (the file may not exist yet).
fn same_file_key(path: &Path) -> Option<PathBuf> {
    let absolute = std::path::absolute(path).ok()?;
    let mut out = PathBuf::new();
    for part in absolute.components() {
        match part {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    Some(out)
}

fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds).ok();
    }
    humantime::parse_duration(text).ok()
}
