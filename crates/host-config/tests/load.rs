//! host-config against whole files: the repository's default config, one shaped like the Python
//! server's example, and every class of mistake an operator makes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use host_config::{parse, BrokerUrl, ConfigErrors, LinkKind, Loaded, PluginSource};

fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| vars.get(name).cloned()
}

fn load_str(text: &str, vars: &[(&str, &str)]) -> Result<Loaded, ConfigErrors> {
    parse(text, Path::new("config.yml"), &env_of(vars))
}

fn errors_of(text: &str) -> Vec<String> {
    match load_str(text, &[]) {
        Ok(_) => panic!("expected the config to be refused"),
        Err(errors) => errors.0.iter().map(ToString::to_string).collect(),
    }
}

const MINIMAL: &str = "
storages:
  local:
    module: sqlite
    options:
      path: /tmp/x.sqlite
chains:
  main:
    storages: [local]
    ingress_lists: [in]
    egress_lists: [out]
";

#[test]
fn the_repository_default_config_loads_without_warnings() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config.yml");
    let text = std::fs::read_to_string(&path).unwrap();
    let loaded = parse(&text, &path, &env_of(&[])).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let config = loaded.config;
    assert!(matches!(config.host.broker, BrokerUrl::Sqlite(_)));
    assert!(config.enabled_chains().count() >= 1);
    assert!(config.storages.len() >= 2);
}

#[test]
fn a_python_example_config_loads_with_a_warning_per_unsupported_part() {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/python_example_config.yml");
    let text = std::fs::read_to_string(&path).unwrap();
    let loaded = parse(&text, &path, &env_of(&[])).unwrap();
    let warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    let warned = |needle: &str| {
        assert!(
            warnings.iter().any(|w| w.contains(needle)),
            "no warning with {needle:?} in {warnings:#?}"
        )
    };
    for section in ["tracers", "imports", "followers"] {
        warned(&format!(": {section}: "));
    }
    warned("links.deepgram_link.module: links.deepgram_link is not built into vcon-host yet");
    warned("storages.mongo.module: storage.mongo: vcon-host has no mongo plugin yet");
    warned("storages.elasticsearch.module");
    warned("link deepgram_link is not supported yet, so chain transcription_chain is disabled");
    warned("storage mongo is skipped");
    // Each warning names the file and a line.
    assert!(
        warnings
            .iter()
            .all(|w| w.contains("python_example_config.yml:")),
        "{warnings:#?}"
    );

    let config = loaded.config;
    let names: Vec<&str> = config.storages.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["postgres", "s3", "file"]);
    let s3 = &config.storages[1];
    assert_eq!(
        s3.source,
        PluginSource::Module {
            plugin: "object-store".into(),
            module: "storage.s3".into()
        }
    );
    let postgres = &config.storages[0];
    assert_eq!(
        postgres.options["password"], "postgres",
        "${{VAR:-default}} expands"
    );
    assert_eq!(
        postgres.options["port"], "5432",
        "a quoted number stays text"
    );

    let transcription = config
        .chains
        .iter()
        .find(|c| c.name == "transcription_chain")
        .unwrap();
    assert!(!transcription.enabled);
    let storage = config
        .chains
        .iter()
        .find(|c| c.name == "storage_chain")
        .unwrap();
    assert!(storage.enabled);
    assert_eq!(storage.storages, ["file", "postgres"]);
    assert_eq!(storage.links, ["tag", "sampler", "expire"]);
    assert_eq!(storage.timeout, Some(Duration::from_secs(30)));
    let kinds: Vec<LinkKind> = config.links.iter().map(|l| l.kind).collect();
    assert_eq!(
        kinds,
        [LinkKind::Tag, LinkKind::Sampler, LinkKind::ExpireVcon]
    );
    assert_eq!(config.ingress_auth["transcribe"].len(), 2);
    assert_eq!(
        config.ingress_auth["default_ingress"][0].expose(),
        "key-one"
    );
}

#[test]
fn permissions_keep_their_yaml_1_1_meaning_for_the_plugin() {
    let loaded = load_str(
        "
storages:
  a: {module: file, options: {file_permissions: 0o644, dir_permissions: 0755}}
  b: {module: file, options: {file_permissions: \"644\", dir_permissions: 493}}
",
        &[],
    )
    .unwrap();
    let a = &loaded.config.storages[0].options;
    assert_eq!(
        a["file_permissions"], "0o644",
        "0o644 is a string in YAML 1.1"
    );
    assert_eq!(a["dir_permissions"], 0o755, "0755 is the octal integer 493");
    let b = &loaded.config.storages[1].options;
    assert_eq!(b["file_permissions"], "644");
}

#[test]
fn broken_yaml_names_the_file_and_line() {
    let errors = errors_of("storages:\n  a:\n    module: file\n   options: [\n");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("config.yml:4: invalid YAML"),
        "{errors:?}"
    );
}

#[test]
fn a_chain_naming_a_missing_storage_or_link_is_refused_with_line_and_key() {
    let errors = errors_of(
        "
storages:
  local: {module: sqlite}
links:
  tag: {module: links.tag}
chains:
  main:
    links:
      - tag
      - tagger
    storages:
      - local
      - postgress
    ingress_lists: [in]
",
    );
    assert_eq!(
        errors,
        [
            "config.yml:10: chains.main.links[1]: link tagger is not defined under links: (defined: tag)",
            "config.yml:13: chains.main.storages[1]: storage postgress is not defined under storages: (defined: local)",
        ]
    );
}

#[test]
fn enabled_zero_disables_a_chain() {
    for off in ["0", "false", "no", "\"0\"", "\"false\""] {
        let text = format!("{MINIMAL}    enabled: {off}\n");
        let loaded = load_str(&text, &[]).unwrap();
        assert!(!loaded.config.chains[0].enabled, "enabled: {off}");
    }
    let loaded = load_str(&format!("{MINIMAL}    enabled: 1\n"), &[]).unwrap();
    assert!(loaded.config.chains[0].enabled);
}

#[test]
fn two_enabled_chains_on_one_ingress_list_are_refused_naming_both() {
    let text =
        format!("{MINIMAL}  second:\n    storages: [local]\n    ingress_lists: [other, in]\n");
    let errors = errors_of(&text);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("chains.second.ingress_lists"),
        "{errors:?}"
    );
    assert!(
        errors[0].contains("ingress list in is also taken by chain main (line 8)"),
        "{errors:?}"
    );
    // Disabling one of them makes it legal.
    let text = format!(
        "{MINIMAL}  second:\n    enabled: false\n    storages: [local]\n    ingress_lists: [in]\n"
    );
    load_str(&text, &[]).unwrap();
}

#[test]
fn environment_variables_expand_and_missing_ones_are_named_with_their_line() {
    let text = "
host:
  workers: ${WORKERS:-3}
storages:
  pg:
    module: postgres
    options:
      password: ${PGPASSWORD}
      url: \"postgres://${PGUSER}@db/x\"
";
    let loaded = load_str(text, &[("PGPASSWORD", "s3cret"), ("PGUSER", "app")]).unwrap();
    assert_eq!(loaded.config.host.workers, 3);
    assert_eq!(loaded.config.storages[0].options["password"], "s3cret");
    assert_eq!(
        loaded.config.storages[0].options["url"],
        "postgres://app@db/x"
    );

    let errors: Vec<String> = load_str(text, &[])
        .unwrap_err()
        .0
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].starts_with("config.yml:8: storages.pg.options.password: environment variable PGPASSWORD is not set"), "{errors:?}");
    assert!(
        errors[1].starts_with(
            "config.yml:9: storages.pg.options.url: environment variable PGUSER is not set"
        ),
        "{errors:?}"
    );
}

#[test]
fn python_environment_variables_fill_host_settings() {
    let loaded = load_str(
        MINIMAL,
        &[
            ("CONSERVER_WORKERS", "6"),
            ("CONSERVER_API_TOKEN", "tok"),
            ("CONSERVER_HEADER_NAME", "X-Api-Key"),
            ("VCON_DLQ_EXPIRY", "0"),
            ("VCON_REDIS_EXPIRY", "3600"),
            ("REDIS_URL", "redis://:pw@127.0.0.1:6379"),
            ("VCON_API_BUSY_POLL_US", "0"),
            ("VCON_KEEP_WHITESPACE", "yes"),
        ],
    )
    .unwrap();
    let host = loaded.config.host;
    assert_eq!(host.workers, 6);
    assert!(host.keep_whitespace, "VCON_KEEP_WHITESPACE=yes");
    assert_eq!(
        host.api_busy_poll_us, 0,
        "VCON_API_BUSY_POLL_US=0 turns polling off"
    );
    assert_eq!(host.api_tokens[0].expose(), "tok");
    assert_eq!(host.header_name, "x-api-key");
    assert_eq!(host.dlq_ttl, None, "VCON_DLQ_EXPIRY=0 means no expiry");
    assert_eq!(host.hot_ttl, Some(Duration::from_secs(3600)));
    assert_eq!(
        host.broker,
        BrokerUrl::Redis("redis://:pw@127.0.0.1:6379".into())
    );

    // The file's host section wins over the environment.
    let text = format!("host:\n  workers: 2\n  broker: ./b.sqlite\n{MINIMAL}");
    let host = load_str(
        &text,
        &[("CONSERVER_WORKERS", "6"), ("REDIS_URL", "redis://x")],
    )
    .unwrap()
    .config
    .host;
    assert_eq!(host.workers, 2);
    assert_eq!(host.broker, BrokerUrl::Sqlite(PathBuf::from("./b.sqlite")));
}

#[test]
fn host_settings_are_checked() {
    let errors = errors_of(
        "
host:
  wrokers: 4
  batch_size: 0
  retry:
    initial_backoff: fast
    max_attempts: 3
  dlq_ttl: 7d
  api_busy_poll_us: -1
  keep_whitespace: sometimes
",
    );
    assert_eq!(errors.len(), 5, "{errors:?}");
    assert!(
        errors[0].starts_with("config.yml:3: host.wrokers: unknown host setting"),
        "{errors:?}"
    );
    assert!(
        errors[1].starts_with("config.yml:4: host.batch_size: expected a whole number ≥ 1"),
        "{errors:?}"
    );
    assert!(
        errors[2].starts_with("config.yml:6: host.retry.initial_backoff: expected a duration"),
        "{errors:?}"
    );
    assert!(
        errors[3].starts_with("config.yml:9: host.api_busy_poll_us: expected a whole number ≥ 0"),
        "{errors:?}"
    );
    assert!(
        errors[4].starts_with(
            "config.yml:10: host.keep_whitespace: expected true or false, found \"sometimes\""
        ),
        "{errors:?}"
    );

    let text = format!(
        "host:\n  dlq_ttl: 2d\n  retry: {{max_backoff: 500ms, initial_backoff: 0.05}}\n{MINIMAL}"
    );
    let host = load_str(&text, &[]).unwrap().config.host;
    assert_eq!(host.api_busy_poll_us, 1000, "the default");
    assert!(!host.keep_whitespace, "whitespace is dropped by default");
    assert_eq!(host.dlq_ttl, Some(Duration::from_secs(2 * 86400)));
    assert_eq!(host.retry.max_backoff, Duration::from_millis(500));
    assert_eq!(host.retry.initial_backoff, Duration::from_millis(50));
}

#[test]
fn duplicate_keys_are_refused_instead_of_the_last_one_winning() {
    let errors = errors_of("storages:\n  a: {module: file}\n  a: {module: sqlite}\n");
    assert_eq!(
        errors,
        ["config.yml:3: storages.a: duplicate key (first set on line 2); remove one of them"]
    );
}

#[test]
fn unknown_modules_are_errors_and_plugin_files_can_be_pinned() {
    let errors = errors_of(
        "storages:\n  a: {module: my.python.storage}\n  b: {plugin: ./x.so, sha256: abc}\n",
    );
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].contains("storages.a.module: my.python.storage is not a storage plugin name"),
        "{errors:?}"
    );
    assert!(
        errors[1].contains("storages.b.sha256: expected 64 hex digits"),
        "{errors:?}"
    );

    let sha = "a".repeat(64);
    let loaded = load_str(
        &format!("storages:\n  b: {{plugin: ./x.so, sha256: {sha}}}\n"),
        &[],
    )
    .unwrap();
    assert_eq!(
        loaded.config.storages[0].source,
        PluginSource::File {
            path: PathBuf::from("./x.so"),
            sha256: Some(sha)
        }
    );
}

#[test]
fn an_empty_file_is_an_empty_config_with_a_warning() {
    let loaded = load_str("# nothing yet\n", &[]).unwrap();
    assert!(loaded.config.chains.is_empty());
    assert!(loaded
        .warnings
        .iter()
        .any(|w| w.message.contains("no enabled chain")));
}

#[test]
fn secrets_never_appear_in_errors_or_debug_output() {
    let text = "host:\n  api_token: hunter2\n  workers: many\n";
    let errors = load_str(text, &[]).unwrap_err().to_string();
    assert!(!errors.contains("hunter2"), "{errors}");
    let loaded = load_str("host:\n  api_token: hunter2\n", &[]).unwrap();
    assert!(!format!("{:?}", loaded.config).contains("hunter2"));
}

#[test]
fn a_storage_on_the_broker_file_is_refused() {
    let errors = errors_of(
        "host:\n  broker: ./data/broker.sqlite\nstorages:\n  s:\n    module: sqlite\n    options: {path: data/broker.sqlite}\n",
    );
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("config.yml:4: storages.s.options.path: data/broker.sqlite is the embedded broker's file"),
        "{errors:?}"
    );
}
