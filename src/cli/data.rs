//! `mixscope data ...`: the built-in suite from the command line.

use std::io::Write;

use anyhow::Result;

use super::DataCmd;
use crate::data::mixture::{Mixture, SpecContext};
use crate::data::sampler::Sampler;
use crate::data::suite::{self, GenOptions, SuiteSource};
use crate::data::{lang, Task};

pub fn data(cmd: DataCmd) -> Result<i32> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match cmd {
        DataCmd::Langs => {
            writeln!(
                out,
                "{:<4} {:<11} {:<10} {:<9} {:<7} {:<8} native",
                "code", "name", "script", "group", "latin", "set"
            )?;
            for l in lang::all() {
                writeln!(
                    out,
                    "{:<4} {:<11} {:<10} {:<9} {:<7} {:<8} {}",
                    l.code,
                    l.name,
                    l.script,
                    l.group.as_str(),
                    if l.is_latin() { "yes" } else { "no" },
                    l.set,
                    l.native
                )?;
            }
        }
        DataCmd::Tasks => {
            writeln!(out, "{:<5} {:<9} description", "task", "metric")?;
            for t in Task::BUILTIN {
                writeln!(out, "{:<5} {:<9} {}", t.as_str(), t.metric(), t.describe())?;
            }
        }
        DataCmd::Sample { mix, n, seed, heldout, levels } => {
            let opts = GenOptions { mr_levels: levels };
            let m = Mixture::parse(&mix, &SpecContext::default())?;
            if heldout {
                for c in m.components() {
                    for ex in suite::suite().heldout(&c.task, &c.lang, n as usize, &opts)? {
                        serde_json::to_writer(&mut out, &ex)?;
                        out.write_all(b"\n")?;
                    }
                }
            } else {
                let src = SuiteSource { opts };
                let mut s = Sampler::new(&m, seed);
                for _ in 0..n {
                    let ex = s.next_example(&src)?;
                    serde_json::to_writer(&mut out, &ex)?;
                    out.write_all(b"\n")?;
                }
            }
        }
        DataCmd::Stats { vocab, tokenizer, runs } => {
            use crate::data::tokenizer::{self, Tok};
            let path = match tokenizer {
                Some(p) => p,
                None => {
                    let root = crate::runs::runs_root(runs.as_deref());
                    tokenizer::suite_tokenizer(&tokenizer::cache_dir(&root), vocab)?
                }
            };
            let tok = Tok::load(&path)?;
            writeln!(out, "tokenizer: {} ({} tokens)", path.display(), tok.vocab_size())?;
            let fert = tokenizer::fertility(&tok, 100)?;
            writeln!(
                out,
                "{:<4} {:>10} {:>10}   {:>6} {:>6} {:>6} {:>6}",
                "lang", "tok/char", "tok/word", "mr", "sm", "if", "lm"
            )?;
            let s = suite::suite();
            for (code, per_char, per_word) in fert {
                let mut lens = Vec::new();
                for t in Task::BUILTIN {
                    let exs = s.heldout(&t, &code, 50, &GenOptions::default())?;
                    let mut total = 0usize;
                    for ex in &exs {
                        total += tok.encode(ex, usize::MAX)?.ids.len();
                    }
                    lens.push(total as f64 / exs.len() as f64);
                }
                writeln!(
                    out,
                    "{:<4} {:>10.3} {:>10.2}   {:>6.1} {:>6.1} {:>6.1} {:>6.1}",
                    code, per_char, per_word, lens[0], lens[1], lens[2], lens[3]
                )?;
            }
            writeln!(out, "(mr..lm: mean tokens per example, prompt + response, held-out sets)")?;
        }
        DataCmd::Pull { repo, preset, config, split, revision, map, limit, out: path, presets } => {
            use crate::data::pull;
            if presets {
                for p in &pull::PRESETS {
                    writeln!(out, "{:<10} {} (config {}, split {})", p.name, p.repo, p.config.unwrap_or("-"), p.split)?;
                    writeln!(out, "           {}", p.about)?;
                    let m = pull::Mapping::of_preset(p);
                    writeln!(
                        out,
                        "           prompt={:?} response={:?} lang={:?} task={:?}{}",
                        m.prompt,
                        m.response,
                        m.lang,
                        m.task,
                        m.answer.map(|a| format!(" answer={a:?}")).unwrap_or_default()
                    )?;
                }
                out.flush()?;
                return Ok(0);
            }
            let p = match preset.as_deref() {
                Some(n) => Some(pull::preset(n).ok_or_else(|| {
                    let names: Vec<&str> = pull::PRESETS.iter().map(|p| p.name).collect();
                    crate::error::bad_input(format!("--preset {n}: unknown (presets: {})", names.join(", ")))
                })?),
                None => None,
            };
            let repo = match (repo, p) {
                (Some(r), _) => r,
                (None, Some(p)) => p.repo.to_string(),
                (None, None) => crate::bail_input!("data pull: give a dataset repository or --preset"),
            };
            let mut mapping = match p {
                Some(p) => pull::Mapping::of_preset(p),
                None => pull::Mapping {
                    prompt: "{prompt}".into(),
                    response: "{response}".into(),
                    lang: "{lang}".into(),
                    task: "{task}".into(),
                    answer: None,
                },
            };
            mapping.apply(&map)?;
            let config = config.or_else(|| p.and_then(|p| p.config.map(String::from)));
            let split = split.or_else(|| p.map(|p| p.split.to_string())).unwrap_or_else(|| "train".into());
            let path = path.expect("clap: --out is required without --presets");
            let files = pull::dataset_files(&repo, revision.as_deref(), config.as_deref(), &split)?;
            let r = pull::convert(&files, &mapping, config.as_deref().unwrap_or(""), limit, &path)?;
            let langs: Vec<String> = r.per_lang.iter().map(|(l, n)| format!("{l} {n}")).collect();
            writeln!(
                out,
                "{} rows from {} file(s) to {} ({})",
                r.written,
                r.files.len(),
                path.display(),
                if langs.is_empty() { "none".to_string() } else { langs.join(", ") }
            )?;
            if r.skipped > 0 {
                writeln!(out, "skipped {} rows (first: {})", r.skipped, r.first_skip.unwrap_or_default())?;
            }
            // Rows of a task that is not a built-in one are kept (user data may name tasks of its
            // own), and said: a run trains them only when its data.tasks names that task.
            for (t, n) in r.per_task.iter().filter(|(t, _)| crate::data::Task::builtin(t).is_none()) {
                eprintln!(
                    "note: task '{t}' is not a built-in task (mr, sm, if, lm): its {n} rows train only in a run whose data.tasks names '{t}' (a task of its own, scored by loss)"
                );
            }
        }
        DataCmd::Check { lang: only } => {
            suite::check(&only)?;
            let n = if only.is_empty() { lang::all().len() } else { only.len() };
            writeln!(out, "ok: {n} language file(s)")?;
        }
    }
    out.flush()?;
    Ok(0)
}
