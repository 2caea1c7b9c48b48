//! The main job end to end: ingest, run, read back; crashes; failing storages and replay.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::support::{run, shared_vcons, stop, without_added_tags, Scratch};

fn fake_set() -> BTreeMap<String, (PathBuf, serde_json::Value)> {
    let mut docs = BTreeMap::new();
    for entry in std::fs::read_dir(shared_vcons().join("fake")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let value: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            let uuid = value["uuid"].as_str().unwrap().to_owned();
            docs.insert(uuid, (path, value));
        }
    }
    assert_eq!(docs.len(), 601, "the shared fake set has 601 vCons");
    docs
}

fn get(scratch: &Scratch, uuid: &str, storage: &str) -> serde_json::Value {
    let (code, out) = run(scratch.host().args(["get", uuid, "--storage", storage]));
    assert_eq!(code, Some(0), "get {uuid} --storage {storage}: {out}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("get answered non-JSON ({e}): {out}"))
}

#[test]
fn run_then_ingest_the_fake_set_stores_every_vcon_in_both_storages() {
    let scratch = Scratch::default_chain();
    let host = scratch.spawn_run();
    let (code, out) = run(scratch
        .host()
        .arg("ingest")
        .arg(shared_vcons().join("fake")));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("accepted 601, refused 0"), "{out}");
    scratch.wait_for("601 rows in sqlite and 601 files", 120, || {
        scratch.sqlite_rows() == 601 && scratch.stored_files().len() == 601
    });
    stop(host);

    let docs = fake_set();
    // Every tenth through the CLI, from each storage; equal to the input once the tag the
    // chain's link added is taken out.
    for (uuid, (_, input)) in docs.iter().step_by(10) {
        for storage in ["sqlite", "file"] {
            let stored = get(&scratch, uuid, storage);
            assert_eq!(
                &without_added_tags(stored, input),
                input,
                "{uuid} from {storage}"
            );
        }
    }
    // All of them in the file tree, byte-parsed.
    for file in scratch.stored_files() {
        let stored: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        let uuid = stored["uuid"].as_str().unwrap();
        let (_, input) = &docs[uuid];
        assert_eq!(
            &without_added_tags(stored.clone(), input),
            input,
            "{}",
            file.display()
        );
    }
}

#[test]
fn cat1_goes_through_whole() {
    let scratch = Scratch::default_chain();
    let cat1 = shared_vcons().join("reference-fixtures/valid/cat1_vcon.json");
    let input: serde_json::Value = serde_json::from_slice(&std::fs::read(&cat1).unwrap()).unwrap();
    let (code, out) = run(scratch.host().arg("ingest").arg(&cat1));
    assert_eq!(code, Some(0), "{out}");
    let host = scratch.spawn_run();
    scratch.wait_for("cat1 stored", 60, || {
        scratch.sqlite_rows() == 1 && scratch.stored_files().len() == 1
    });
    stop(host);
    let uuid = input["uuid"].as_str().unwrap();
    for storage in ["sqlite", "file"] {
        assert_eq!(
            without_added_tags(get(&scratch, uuid, storage), &input),
            input
        );
    }
}

#[test]
fn invalid_fixtures_are_refused_by_file_with_reasons_and_nothing_is_stored() {
    let scratch = Scratch::default_chain();
    let invalid = shared_vcons().join("reference-fixtures/invalid");
    let (code, out) = run(scratch.host().arg("ingest").arg(&invalid));
    assert_eq!(code, Some(1), "{out}");
    let files: Vec<_> = std::fs::read_dir(&invalid)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 11);
    for file in &files {
        let line = out
            .lines()
            .find(|l| {
                l.starts_with("refused ")
                    && l.contains(&*file.file_name().unwrap().to_string_lossy())
            })
            .unwrap_or_else(|| panic!("no refusal line for {}:\n{out}", file.display()));
        assert!(
            line.len() > file.display().to_string().len() + 12,
            "a reason follows: {line}"
        );
    }
    assert!(out.contains("accepted 0, refused 11"), "{out}");
    // Nothing in the broker: no hot copy, nothing queued.
    let broker = rusqlite::Connection::open(scratch.path().join("data/broker.sqlite")).unwrap();
    let count = |sql: &str| broker.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
    assert_eq!(count("SELECT count(*) FROM vcons"), 0);
    assert_eq!(count("SELECT count(*) FROM list_items"), 0);
}

#[test]
fn kill_9_while_ingesting_5000_loses_nothing_accepted() {
    let scratch = Scratch::default_chain();
    // 5,000 distinct documents: the fake set with fresh uuids.
    let docs_dir = scratch.path().join("incoming");
    std::fs::create_dir(&docs_dir).unwrap();
    let fakes: Vec<String> = fake_set()
        .into_values()
        .map(|(path, _)| std::fs::read_to_string(path).unwrap())
        .collect();
    let mut uuids = Vec::new();
    for i in 0..5000 {
        let template = &fakes[i % fakes.len()];
        let value: serde_json::Value = serde_json::from_str(template).unwrap();
        let old = value["uuid"].as_str().unwrap();
        let new = format!("00000000-0000-4000-8000-{i:012}");
        std::fs::write(
            docs_dir.join(format!("{i}.json")),
            template.replace(old, &new),
        )
        .unwrap();
        uuids.push(new);
    }
    let host = scratch.spawn_run();
    let ingest = scratch.host().arg("ingest").arg(&docs_dir).output();
    // Kill the host hard part-way through its work.
    scratch.wait_for("some vCons stored", 60, || scratch.sqlite_rows() > 200);
    let mut host = host;
    host.kill().unwrap();
    host.wait().unwrap();
    let ingest = ingest.unwrap();
    let out = String::from_utf8_lossy(&ingest.stdout);
    assert!(ingest.status.success(), "{out}");
    assert!(out.contains("accepted 5000, refused 0"), "{out}");
    let before_restart = scratch.sqlite_rows();
    assert!(
        before_restart < 5000,
        "the kill came too late to test anything ({before_restart})"
    );

    let host = scratch.spawn_run();
    scratch.wait_for("all 5000 in both storages", 240, || {
        scratch.sqlite_rows() == 5000 && scratch.stored_files().len() == 5000
    });
    stop(host);
    let conn = rusqlite::Connection::open(scratch.path().join("data/vcons.sqlite")).unwrap();
    let mut stmt = conn.prepare("SELECT id FROM vcons").unwrap();
    let stored: std::collections::BTreeSet<String> = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let expected: std::collections::BTreeSet<String> = uuids.into_iter().collect();
    assert_eq!(stored, expected);
}

#[test]
fn a_failing_storage_dead_letters_with_the_reason_and_replay_stores_them() {
    // The file storage points under a regular file, so every write fails (as root, a read-only
    // directory would not stop it); removing the file fixes the fault.
    let scratch = Scratch::with_config(
        r#"
host:
  broker: ./data/broker.sqlite
  workers: 1
  retry: { max_attempts: 2, initial_backoff: 10ms, max_backoff: 20ms }
storages:
  sqlite: { module: storage.sqlite, options: { path: ./data/vcons.sqlite } }
  file: { module: storage.file, options: { path: ./blocked/vcons } }
links: {}
chains:
  main:
    links: []
    storages: [sqlite, file]
    ingress_lists: [in]
    egress_lists: [out]
"#,
    );
    std::fs::write(scratch.path().join("blocked"), "not a directory").unwrap();
    let fake = shared_vcons().join("fake");
    let some: Vec<PathBuf> = std::fs::read_dir(&fake)
        .unwrap()
        .take(20)
        .map(|e| e.unwrap().path())
        .collect();
    let (code, out) = run(scratch.host().arg("ingest").args(&some));
    assert_eq!(code, Some(0), "{out}");
    let host = scratch.spawn_run();
    scratch.wait_for("20 dead letters for the file storage", 60, || {
        let (_, out) = run(scratch.host().args(["dlq", "list", "storage:file"]));
        out.contains("20 in DLQ:storage:file")
    });
    stop(host);
    // The other storage's writes stand; no egress until every storage has the vCon.
    assert_eq!(scratch.sqlite_rows(), 20);
    let (_, listing) = run(scratch.host().args(["dlq", "list", "storage:file"]));
    assert!(listing.lines().next().unwrap().contains('\t'), "{listing}");
    assert!(
        listing.contains("blocked"),
        "the reason names the path: {listing}"
    );

    std::fs::remove_file(scratch.path().join("blocked")).unwrap();
    let (code, out) = run(scratch.host().args(["dlq", "replay", "storage:file"]));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("replayed 20 of 20 into file"), "{out}");
    assert_eq!(scratch.stored_files_in("blocked/vcons").len(), 20);
    let (_, after) = run(scratch.host().args(["dlq", "list", "storage:file"]));
    assert!(after.contains("0 in DLQ:storage:file"), "{after}");
    // The egress owed is paid on replay.
    let broker = rusqlite::Connection::open(scratch.path().join("data/broker.sqlite")).unwrap();
    let egress: i64 = broker
        .query_row(
            "SELECT count(*) FROM list_items WHERE list = 'out'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(egress, 20);
}

#[test]
fn a_link_error_dead_letters_on_the_ingress_list_and_replay_requeues() {
    let scratch = Scratch::with_config(
        r#"
host: { broker: ./data/broker.sqlite, workers: 1 }
storages:
  sqlite: { module: storage.sqlite, options: { path: ./data/vcons.sqlite } }
links:
  tag: { module: links.tag, options: { tags: [x] } }
chains:
  main: { links: [tag], storages: [sqlite], ingress_lists: [in] }
"#,
    );
    // A valid vCon whose `attachments` the tag link cannot extend.
    let doc = r#"{"uuid":"018f2b9c-6a4e-7c1d-9f00-0123456789ab","vcon":"0.0.1","attachments":{"not":"a list"}}"#;
    let file = scratch.path().join("odd.json");
    std::fs::write(&file, doc).unwrap();
    let (code, out) = run(scratch.host().arg("ingest").arg(&file));
    if code == Some(1) {
        // `crates/vcon` refused it at ingress: then there is nothing for the link to fail on.
        assert!(out.contains("attachments"), "{out}");
        return;
    }
    let host = scratch.spawn_run();
    scratch.wait_for("a dead letter on DLQ:in", 30, || {
        run(scratch.host().args(["dlq", "list", "in"]))
            .1
            .contains("1 in DLQ:in")
    });
    stop(host);
    let (_, listing) = run(scratch.host().args(["dlq", "list", "in"]));
    assert!(listing.contains("link tag failed"), "{listing}");
    let (code, out) = run(scratch.host().args(["dlq", "replay", "in"]));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("moved 1 from DLQ:in back to in"), "{out}");
}
