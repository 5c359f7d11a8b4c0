//! `mixscope data pull` without network: a fake Hugging Face dataset cache holding parquet
//! (snappy) and JSONL files that this test writes, converted by a mapping or a preset into
//! user-data JSONL that training loads; and the errors.

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::*;
use parquet::basic::Compression;
use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;

/// A parquet file of MGSM-like rows: question (string, nullable), answer_number (int64).
fn write_parquet(path: &Path, rows: &[(Option<&str>, i64)]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let schema = Arc::new(
        parse_message_type("message schema { OPTIONAL BYTE_ARRAY question (UTF8); REQUIRED INT64 answer_number; }")
            .unwrap(),
    );
    let props = Arc::new(WriterProperties::builder().set_compression(Compression::SNAPPY).build());
    let mut w = SerializedFileWriter::new(std::fs::File::create(path).unwrap(), schema, props).unwrap();
    let mut rg = w.next_row_group().unwrap();
    let mut i = 0;
    while let Some(mut col) = rg.next_column().unwrap() {
        if i == 0 {
            let vals: Vec<ByteArray> = rows.iter().filter_map(|r| r.0).map(ByteArray::from).collect();
            let def: Vec<i16> = rows.iter().map(|r| r.0.is_some() as i16).collect();
            col.typed::<ByteArrayType>().write_batch(&vals, Some(&def), None).unwrap();
        } else {
            let vals: Vec<i64> = rows.iter().map(|r| r.1).collect();
            col.typed::<Int64Type>().write_batch(&vals, None, None).unwrap();
        }
        col.close().unwrap();
        i += 1;
    }
    rg.close().unwrap();
    w.close().unwrap();
}

struct Env {
    _t: tempfile::TempDir,
    root: PathBuf,
    hub: PathBuf,
}

fn env() -> Env {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().to_path_buf();
    let hub = root.join("hub");
    let s = hub_snapshot(&hub, "dataset", "testorg/mgsm-mini");
    write_parquet(
        &s.join("data/es/test-00000-of-00001.parquet"),
        &[
            (Some("Juan tiene 3 manzanas y compra 4. ¿Cuántas tiene?"), 7),
            (None, 1),
            (Some("¿Cuánto es 10 por 12?"), 120),
        ],
    );
    write_parquet(&s.join("data/fr/test-00000-of-00001.parquet"), &[(Some("Combien font 2 et 2 ?"), 4)]);
    std::fs::write(s.join("data/es/train.jsonl"), "{\"question\": \"no\", \"answer_number\": 0}\n").unwrap();
    Env { _t: t, root, hub }
}

impl Env {
    fn pull(&self, args: &[&str]) -> std::process::Output {
        let mut c = cmd(&self.root.join("cache"));
        c.env("HF_HUB_CACHE", &self.hub).env_remove("HF_HOME").arg("data").arg("pull").args(args);
        c.output().unwrap()
    }
}

fn lines(p: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(p).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn parquet_rows_of_a_config_and_split_become_training_data() {
    let e = env();
    let out = e.root.join("es.jsonl");
    let said = ok(e.pull(&[
        "testorg/mgsm-mini",
        "--config",
        "es",
        "--split",
        "test",
        "--map",
        "prompt={question}",
        "--map",
        "response=La respuesta es {answer_number}.",
        "--map",
        "lang={config}",
        "--map",
        "task=mr",
        "--map",
        "answer={answer_number}",
        "--out",
        out.to_str().unwrap(),
    ]));
    assert!(said.contains("2 rows from 1 file(s)") && said.contains("es 2"), "{said}");
    assert!(said.contains("skipped 1 rows (first: a mapped value is null)"), "{said}");
    let l = lines(&out);
    assert_eq!(l.len(), 2);
    assert_eq!(l[0]["lang"], "es");
    assert_eq!(l[0]["task"], "mr");
    assert_eq!(l[0]["prompt"], "Juan tiene 3 manzanas y compra 4. ¿Cuántas tiene?");
    assert_eq!(l[0]["response"], "La respuesta es 7.");
    assert_eq!(l[0]["answer"], 7);
    assert_eq!(l[1]["answer"], 120);

    // It is user data as training reads it.
    let data = mixscope::data::jsonl::UserData::load(std::slice::from_ref(&out)).unwrap();
    let n: usize = data.train.values().chain(data.heldout.values()).map(|v| v.len()).sum();
    assert_eq!(n, 2);
}

#[test]
fn a_preset_knows_its_repository_split_and_mapping() {
    let e = env();
    let s = hub_snapshot(&e.hub, "dataset", "juletxara/mgsm");
    std::fs::write(
        s.join("mgsm_fr_test.jsonl"),
        "{\"question\": \"Combien font 6 fois 7 ?\", \"answer\": null, \"answer_number\": 42, \"equation_solution\": null}\n",
    )
    .unwrap();
    let out = e.root.join("fr.jsonl");
    let said = ok(e.pull(&["--preset", "mgsm", "--config", "fr", "--out", out.to_str().unwrap()]));
    assert!(said.contains("1 rows") && said.contains("fr 1"), "{said}");
    let l = lines(&out);
    assert_eq!(l[0]["task"], "mr");
    assert_eq!(l[0]["answer"], 42);
    assert_eq!(l[0]["response"], "The answer is 42.");
    let listed = ok(e.pull(&["--presets"]));
    for p in ["xlsum", "mgsm", "mcot-math", "aya-dolly"] {
        assert!(listed.contains(p), "{listed}");
    }
}

#[test]
fn pull_errors_exit_2_and_write_nothing() {
    let e = env();
    let out = e.root.join("x.jsonl");
    let o = out.to_str().unwrap();
    let err =
        bad(e.pull(&["testorg/mgsm-mini", "--config", "es", "--split", "test", "--map", "prompt={q}", "--out", o]));
    assert!(err.contains("no column 'q'") && err.contains("answer_number") && err.contains(".parquet"), "{err}");
    let err = bad(e.pull(&["testorg/mgsm-mini", "--config", "de", "--split", "test", "--out", o]));
    assert!(err.contains("no parquet or JSONL file for config 'de'") && err.contains("data/es/"), "{err}");
    let err = bad(e.pull(&["testorg/absent", "--out", o]));
    assert!(err.contains("testorg/absent") && err.contains("HF_HUB_OFFLINE"), "{err}");
    let err = bad(e.pull(&["--preset", "nope", "--out", o]));
    assert!(err.contains("unknown (presets: xlsum"), "{err}");
    let err = bad(e.pull(&["testorg/mgsm-mini", "--map", "title={x}", "--out", o]));
    assert!(err.contains("unknown field 'title'"), "{err}");
    assert!(!out.exists());
    let leftovers: Vec<_> = std::fs::read_dir(&e.root)
        .unwrap()
        .flatten()
        .filter(|f| f.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty());
}

/// A task name that is not a built-in one is written (user data may have tasks of its own), but
/// said loudly; and training from a file with rows of a task its `data.tasks` does not name
/// says which rows it leaves out (they were ignored without a word).
#[test]
fn rows_of_a_task_training_will_not_use_are_said_loudly() {
    let e = env();
    let out = e.root.join("zz.jsonl");
    let o = e.pull(&[
        "testorg/mgsm-mini",
        "--config",
        "es",
        "--split",
        "test",
        "--map",
        "prompt={question}",
        "--map",
        "response={answer_number}",
        "--map",
        "lang={config}",
        "--map",
        "task=zz",
        "--out",
        out.to_str().unwrap(),
    ]);
    let said = format!("{}{}", ok(o.clone()), stderr(&o));
    assert!(said.contains("task 'zz' is not a built-in task"), "{said}");
    assert_eq!(lines(&out).len(), 2);
    let tiny = std::fs::read_to_string(fixture("tiny.toml")).unwrap();
    let cfg = e.root.join("zz.toml");
    std::fs::write(&cfg, tiny.replace("heldout = [\"pt\"]", "heldout = [\"pt\"]\nfiles = [\"zz.jsonl\"]")).unwrap();
    let o = cmd(&e.root.join("cache"))
        .args(["train", cfg.to_str().unwrap(), "--runs", e.root.join("runs").to_str().unwrap(), "-q"])
        .args(["--set", "max_steps=1", "--set", "eval_every=0", "--set", "eval.generate_n=0"])
        .output()
        .unwrap();
    let err = stderr(&o);
    ok(o);
    assert!(err.contains("2 rows of task 'zz'") && err.contains("data.tasks"), "{err}");
}
