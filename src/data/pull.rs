//! `mixscope data pull`: rows of a Hugging Face dataset (parquet or JSONL files of one config
//! and split, from the standard cache or downloaded through hf-hub) turned into mixscope's
//! user-data JSONL by a field mapping.
//!
//! A mapping gives `prompt`, `response`, `lang` and `task` (and optionally `answer`, the number
//! a math answer must end with) as templates over the row's columns: `{text}` is the column
//! `text`, `{config}` the dataset config, anything else is literal. Languages may be written
//! as codes (`es`), ISO 639-3 codes (`spa`) or English names (`spanish`, as XLSum's configs).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::bail_input;
use crate::hub::{self, RepoType};

/// A field mapping: output field → template.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapping {
    pub prompt: String,
    pub response: String,
    pub lang: String,
    pub task: String,
    pub answer: Option<String>,
}

/// A documented source of the paper, with its mapping.
pub struct Preset {
    pub name: &'static str,
    pub repo: &'static str,
    pub config: Option<&'static str>,
    pub split: &'static str,
    pub about: &'static str,
    pub prompt: &'static str,
    pub response: &'static str,
    pub lang: &'static str,
    pub task: &'static str,
    pub answer: Option<&'static str>,
}

/// The paper's sources (arXiv 2504.16677 §3). Their column names as the dataset cards give
/// them; `--map` overrides any of them.
pub const PRESETS: [Preset; 4] = [
    Preset {
        name: "xlsum",
        repo: "csebuetnlp/xlsum",
        config: Some("spanish"),
        split: "train",
        about: "XLSum news summarization (SM); configs are language names: spanish, french, japanese, chinese_simplified, arabic, korean, portuguese, english, ... (--revision refs/convert/parquet for the hub's parquet conversion)",
        prompt: "Summarize the following article in one or two sentences.\n\n{text}",
        response: "{summary}",
        lang: "{config}",
        task: "sm",
        answer: None,
    },
    Preset {
        name: "mgsm",
        repo: "juletxara/mgsm",
        config: Some("es"),
        split: "test",
        about: "MGSM grade-school math (MR eval); configs are language codes; --revision refs/convert/parquet reads the hub's parquet conversion of a repository published with a loading script",
        prompt: "{question}",
        response: "The answer is {answer_number}.",
        lang: "{config}",
        task: "mr",
        answer: Some("{answer_number}"),
    },
    Preset {
        name: "mcot-math",
        repo: "laihuiyuan/mCoT-MATH",
        config: None,
        split: "train",
        about: "mCoT-MATH chain-of-thought math in 11 languages (MR training)",
        prompt: "{question}",
        response: "{answer}",
        lang: "{lang}",
        task: "mr",
        answer: None,
    },
    Preset {
        name: "aya-dolly",
        repo: "CohereForAI/aya_evaluation_suite",
        config: Some("dolly_machine_translated"),
        split: "test",
        about: "Aya Dolly, machine-translated (IF eval); languages as ISO 639-3 codes",
        prompt: "{inputs}",
        response: "{targets}",
        lang: "{language}",
        task: "if",
        answer: None,
    },
];

pub fn preset(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name == name)
}

impl Mapping {
    pub fn of_preset(p: &Preset) -> Mapping {
        Mapping {
            prompt: p.prompt.into(),
            response: p.response.into(),
            lang: p.lang.into(),
            task: p.task.into(),
            answer: p.answer.map(String::from),
        }
    }

    /// Apply `key=template` overrides (`--map`).
    pub fn apply(&mut self, sets: &[String]) -> Result<()> {
        for s in sets {
            let Some((k, v)) = s.split_once('=') else {
                bail_input!("--map {s}: expected FIELD=TEMPLATE (prompt, response, lang, task, answer)");
            };
            let v = v.replace("\\n", "\n");
            match k.trim() {
                "prompt" => self.prompt = v,
                "response" => self.response = v,
                "lang" => self.lang = v,
                "task" => self.task = v,
                "answer" => self.answer = Some(v).filter(|v| !v.is_empty()),
                other => bail_input!("--map {s}: unknown field '{other}' (prompt, response, lang, task, answer)"),
            }
        }
        for (name, t) in
            [("prompt", &self.prompt), ("response", &self.response), ("lang", &self.lang), ("task", &self.task)]
        {
            if t.trim().is_empty() {
                bail_input!("--map: '{name}' is empty; give it a template such as {name}={{column}}");
            }
        }
        Ok(())
    }

    /// Every column the templates name (besides `config`).
    pub fn columns(&self) -> Vec<String> {
        let mut out = Vec::new();
        for t in [Some(&self.prompt), Some(&self.response), Some(&self.lang), Some(&self.task), self.answer.as_ref()]
            .into_iter()
            .flatten()
        {
            for c in placeholders(t) {
                if c != "config" && !out.contains(&c) {
                    out.push(c);
                }
            }
        }
        out
    }
}

fn placeholders(t: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = t;
    while let Some(a) = rest.find('{') {
        match rest[a + 1..].find('}') {
            Some(b) => {
                out.push(rest[a + 1..a + 1 + b].trim().to_string());
                rest = &rest[a + 2 + b..];
            }
            None => break,
        }
    }
    out
}

/// Render a template for one row; `None` when a named value is null.
fn render(t: &str, row: &serde_json::Map<String, serde_json::Value>, config: &str) -> Option<String> {
    let mut out = String::with_capacity(t.len());
    let mut rest = t;
    while let Some(a) = rest.find('{') {
        let Some(b) = rest[a + 1..].find('}') else { break };
        out.push_str(&rest[..a]);
        let name = rest[a + 1..a + 1 + b].trim();
        if name == "config" {
            out.push_str(config);
        } else {
            match row.get(name)? {
                serde_json::Value::Null => return None,
                serde_json::Value::String(s) => out.push_str(s),
                v => out.push_str(&v.to_string()),
            }
        }
        rest = &rest[a + 2 + b..];
    }
    out.push_str(rest);
    Some(out)
}

/// A language as the suite's code, from a code, an ISO 639-3 code or an English name
/// (`chinese_simplified`, `spanish`).
pub fn normalize_lang(s: &str) -> Option<&'static str> {
    let s = s.trim().to_ascii_lowercase();
    if let Some(l) = super::lang::get(&s) {
        return Some(super::lang::codes().into_iter().find(|c| *c == l.code).expect("a suite language"));
    }
    const ALIASES: [(&str, &str); 32] = [
        ("eng", "en"),
        ("spa", "es"),
        ("fra", "fr"),
        ("fre", "fr"),
        ("jpn", "ja"),
        ("zho", "zh"),
        ("chi", "zh"),
        ("cmn", "zh"),
        ("arb", "ar"),
        ("ara", "ar"),
        ("kor", "ko"),
        ("por", "pt"),
        ("rus", "ru"),
        ("swh", "sw"),
        ("swa", "sw"),
        ("ben", "bn"),
        ("tha", "th"),
        ("english", "en"),
        ("spanish", "es"),
        ("french", "fr"),
        ("japanese", "ja"),
        ("chinese", "zh"),
        ("chinese_simplified", "zh"),
        ("arabic", "ar"),
        ("korean", "ko"),
        ("portuguese", "pt"),
        ("russian", "ru"),
        ("swahili", "sw"),
        ("bengali", "bn"),
        ("thai", "th"),
        ("zh-cn", "zh"),
        ("zh_cn", "zh"),
    ];
    ALIASES.iter().find(|(a, _)| *a == s).map(|(_, c)| *c)
}

/// Whether `word` appears in `path` as a whole component of it (between `/ _ - .` or the ends).
fn has_token(path: &str, word: &str) -> bool {
    let sep = |c: Option<char>| c.is_none_or(|c| "/_-.".contains(c));
    let p = path.to_ascii_lowercase();
    let w = word.to_ascii_lowercase();
    let mut start = 0;
    while let Some(i) = p[start..].find(&w) {
        let a = start + i;
        let b = a + w.len();
        if sep(p[..a].chars().last()) && sep(p[b..].chars().next()) {
            return true;
        }
        start = a + 1;
    }
    false
}

/// The data files of a config and split among a repository's file names (parquet and JSONL).
pub fn select_files(names: &[String], config: Option<&str>, split: &str) -> Vec<String> {
    let mut out: Vec<String> = names
        .iter()
        .filter(|n| n.ends_with(".parquet") || n.ends_with(".jsonl") || n.ends_with(".json"))
        .filter(|n| has_token(n, split))
        .filter(|n| config.is_none_or(|c| has_token(n, c)))
        .cloned()
        .collect();
    out.sort();
    out
}

/// Every file below a directory, as relative `/` paths.
fn walk(dir: &Path) -> Vec<String> {
    fn go(base: &Path, d: &Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                go(base, &p, out);
            } else if let Ok(r) = p.strip_prefix(base) {
                out.push(r.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    let mut out = Vec::new();
    go(dir, dir, &mut out);
    out
}

/// The dataset's files for a config and split: from the cached snapshot, or (unless offline)
/// downloaded through hf-hub. A local directory works too.
pub fn dataset_files(repo: &str, revision: Option<&str>, config: Option<&str>, split: &str) -> Result<Vec<PathBuf>> {
    let none = |where_: &str, names: &[String]| {
        let shown: Vec<&String> = names.iter().take(8).collect();
        crate::error::bad_input(format!(
            "dataset {repo}: no parquet or JSONL file for config {} and split '{split}' in {where_} (files: {shown:?}{})",
            config.map_or("(any)".to_string(), |c| format!("'{c}'")),
            if names.len() > 8 { ", ..." } else { "" }
        ))
    };
    let p = Path::new(repo);
    if p.is_dir() {
        let names = walk(p);
        let sel = select_files(&names, config, split);
        if sel.is_empty() {
            return Err(none(&p.display().to_string(), &names));
        }
        return Ok(sel.iter().map(|n| p.join(n)).collect());
    }
    let rev = revision.unwrap_or("main");
    match hub::cached_snapshot(RepoType::Dataset, repo, revision) {
        Ok(snap) => {
            let names = walk(&snap);
            let sel = select_files(&names, config, split);
            if !sel.is_empty() {
                return Ok(sel.iter().map(|n| snap.join(n)).collect());
            }
            if hub::offline() {
                return Err(none(&snap.display().to_string(), &names));
            }
        }
        Err(_) if hub::offline() => bail_input!(
            "dataset {repo} (revision {rev}) is not in the Hugging Face cache {} and HF_HUB_OFFLINE is set",
            hub::cache_dir().display()
        ),
        Err(_) => {}
    }
    use hf_hub::Repo;
    let fail =
        |e: hf_hub::api::sync::ApiError| crate::error::bad_input(format!("dataset {repo} (revision {rev}): {e}"));
    let api = hub::api().map_err(fail)?;
    let r = api.repo(Repo::with_revision(repo.to_string(), RepoType::Dataset, rev.to_string()));
    let names: Vec<String> = r.info().map_err(fail)?.siblings.into_iter().map(|s| s.rfilename).collect();
    let sel = select_files(&names, config, split);
    if sel.is_empty() {
        return Err(none("the hub repository", &names));
    }
    sel.iter().map(|n| r.get(n).map_err(fail)).collect()
}

/// The rows of a parquet or JSONL file as JSON objects.
fn read_rows(f: &Path, mut each: impl FnMut(serde_json::Map<String, serde_json::Value>) -> Result<()>) -> Result<()> {
    let name = f.display().to_string();
    if name.ends_with(".parquet") {
        use parquet::file::reader::{FileReader, SerializedFileReader};
        let file = std::fs::File::open(f).with_context(|| format!("opening {name}"))?;
        let reader = SerializedFileReader::new(file)
            .map_err(|e| crate::error::bad_input(format!("{name}: not a readable parquet file: {e}")))?;
        let rows = reader.get_row_iter(None).map_err(|e| crate::error::bad_input(format!("{name}: {e}")))?;
        for (i, row) in rows.enumerate() {
            let row = row.map_err(|e| crate::error::bad_input(format!("{name}: row {}: {e}", i + 1)))?;
            match row.to_json_value() {
                serde_json::Value::Object(o) => each(o)?,
                _ => bail_input!("{name}: row {} is not a record", i + 1),
            }
        }
        return Ok(());
    }
    let file = std::fs::File::open(f).with_context(|| format!("opening {name}"))?;
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| crate::error::bad_input(format!("{name}:{}: {e}", i + 1)))?;
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<serde_json::Value>(&line) {
            Ok(serde_json::Value::Object(o)) => each(o)?,
            Ok(_) => bail_input!("{name}:{}: not a JSON object", i + 1),
            Err(e) => bail_input!("{name}:{}:{}: {e}", i + 1, e.column()),
        }
    }
    Ok(())
}

/// What a pull wrote.
#[derive(Debug, Default)]
pub struct Pulled {
    pub files: Vec<PathBuf>,
    pub written: usize,
    pub per_lang: BTreeMap<String, usize>,
    /// Rows written per task.
    pub per_task: BTreeMap<String, usize>,
    /// Rows left out, and the first reason.
    pub skipped: usize,
    pub first_skip: Option<String>,
}

/// Convert `files` into mixscope JSONL at `out` (written whole, then renamed), at most
/// `limit` rows. A column the mapping names that the data lacks is an error naming the
/// columns there are; a row whose values are null or whose language is not one of the
/// suite's is skipped and counted.
pub fn convert(files: &[PathBuf], map: &Mapping, config: &str, limit: Option<usize>, out: &Path) -> Result<Pulled> {
    let mut res = Pulled { files: files.to_vec(), ..Pulled::default() };
    let tmp = out.with_file_name(format!(
        ".{}.tmp-{}",
        out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        std::process::id()
    ));
    let mut w =
        std::io::BufWriter::new(std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?);
    let wanted = map.columns();
    let result = (|| -> Result<()> {
        for f in files {
            let mut checked = false;
            read_rows(f, |row| {
                if limit.is_some_and(|l| res.written >= l) {
                    return Ok(());
                }
                if !checked {
                    if let Some(missing) = wanted.iter().find(|c| !row.contains_key(c.as_str())) {
                        let have: Vec<&String> = row.keys().collect();
                        bail_input!(
                            "{}: no column '{missing}' for the mapping (columns: {have:?}); change it with --map",
                            f.display()
                        );
                    }
                    checked = true;
                }
                let mut skip = |why: String| {
                    res.skipped += 1;
                    res.first_skip.get_or_insert(why);
                };
                let get = |t: &str| render(t, &row, config);
                let (Some(prompt), Some(response), Some(lang), Some(task)) =
                    (get(&map.prompt), get(&map.response), get(&map.lang), get(&map.task))
                else {
                    skip("a mapped value is null".into());
                    return Ok(());
                };
                let Some(code) = normalize_lang(&lang) else {
                    skip(format!("language '{lang}' is not one of the suite's"));
                    return Ok(());
                };
                let mut line =
                    serde_json::json!({ "lang": code, "task": task.trim(), "prompt": prompt, "response": response });
                if let Some(a) = map.answer.as_deref().and_then(get) {
                    match a.trim().replace(',', "").parse::<f64>() {
                        Ok(x) if x.fract() == 0.0 => line["answer"] = serde_json::json!(x as i64),
                        _ => {
                            skip(format!("answer '{a}' is not an integer"));
                            return Ok(());
                        }
                    }
                }
                writeln!(w, "{line}")?;
                res.written += 1;
                *res.per_lang.entry(code.to_string()).or_default() += 1;
                *res.per_task.entry(task.trim().to_string()).or_default() += 1;
                Ok(())
            })?;
        }
        w.flush()?;
        w.get_ref().sync_all()?;
        Ok(())
    })();
    drop(w);
    match result {
        Ok(()) => {
            std::fs::rename(&tmp, out).with_context(|| format!("writing {}", out.display()))?;
            Ok(res)
        }
        Err(e) => {
            std::fs::remove_file(&tmp).ok();
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_of_a_config_and_split() {
        let names: Vec<String> = [
            "data/es/train-00000-of-00002.parquet",
            "data/es/train-00001-of-00002.parquet",
            "data/es/test-00000-of-00001.parquet",
            "data/fr/train-00000-of-00001.parquet",
            "spanish_train.jsonl",
            "chinese_simplified_train.jsonl",
            "README.md",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            select_files(&names, Some("es"), "train"),
            ["data/es/train-00000-of-00002.parquet", "data/es/train-00001-of-00002.parquet"]
        );
        assert_eq!(select_files(&names, Some("spanish"), "train"), ["spanish_train.jsonl"]);
        assert_eq!(select_files(&names, Some("chinese_simplified"), "train"), ["chinese_simplified_train.jsonl"]);
        assert!(select_files(&names, Some("e"), "train").is_empty(), "whole components only");
        assert_eq!(select_files(&names, None, "test"), ["data/es/test-00000-of-00001.parquet"]);
    }

    #[test]
    fn languages_by_code_iso3_or_name() {
        assert_eq!(normalize_lang("es"), Some("es"));
        assert_eq!(normalize_lang("spa"), Some("es"));
        assert_eq!(normalize_lang("Chinese_Simplified"), Some("zh"));
        assert_eq!(normalize_lang("arb"), Some("ar"));
        assert_eq!(normalize_lang("klingon"), None);
    }

    #[test]
    fn templates_name_columns_and_the_config() {
        let row: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(r#"{"q": "2+2?", "n": 4, "z": null}"#).unwrap();
        assert_eq!(render("Q: {q} ({config})", &row, "es").as_deref(), Some("Q: 2+2? (es)"));
        assert_eq!(render("{n}", &row, "es").as_deref(), Some("4"));
        assert_eq!(render("{z}", &row, "es"), None);
        assert_eq!(render("{missing}", &row, "es"), None);
        let m = Mapping::of_preset(preset("mgsm").unwrap());
        assert_eq!(m.columns(), ["question", "answer_number"]);
    }
}
