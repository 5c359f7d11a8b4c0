//! The command line (DESIGN.md §4). Each subcommand is a thin layer over the library.

use std::io::Write;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::data::mixture::{Mixture, SpecContext};
use crate::data::sampler::Sampler;
use crate::data::suite::{self, GenOptions, SuiteSource};
use crate::data::{lang, Task};

#[derive(Parser, Debug)]
#[command(name = "mixscope", version, about = "Run and watch multilingual post-training experiments")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// The built-in task suite: languages, tasks, samples, statistics.
    #[command(subcommand)]
    Data(DataCmd),
}

#[derive(Subcommand, Debug)]
pub enum DataCmd {
    /// List the suite's languages with script and default group.
    Langs,
    /// List the tasks and their metrics.
    Tasks,
    /// Draw training examples from a mixture as JSONL on stdout.
    Sample {
        /// The mixture SPEC, e.g. en=0.6,es=0.1,fr=0.1,ja=0.1,zh=0.1 or multilingual=0.4.
        #[arg(long)]
        mix: String,
        /// How many examples.
        #[arg(long, default_value_t = 10)]
        n: u64,
        /// The data seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Draw held-out (evaluation) examples of one task instead: the fixed sets.
        #[arg(long)]
        heldout: bool,
        /// MR difficulty levels, e.g. 1 or 1,2.
        #[arg(long, default_value = "1", value_delimiter = ',')]
        levels: Vec<u8>,
    },
    /// Per-language statistics: tokenizer fertility (tokens per character and per word) and
    /// mean prompt / response lengths in tokens, on the held-out sets.
    Stats {
        /// Vocabulary size of the demo tokenizer (trained and cached on first use).
        #[arg(long, default_value_t = 4096)]
        vocab: usize,
        /// A tokenizer.json to measure instead of the demo tokenizer.
        #[arg(long)]
        tokenizer: Option<std::path::PathBuf>,
        /// The runs root (its .cache holds the demo tokenizer).
        #[arg(long, env = "MIXSCOPE_RUNS", default_value = "runs")]
        runs: std::path::PathBuf,
    },
    /// Check the suite's language files (every template against every list entry, and the
    /// script of the generated text).
    Check {
        /// Only these languages (default: all).
        #[arg(long, value_delimiter = ',')]
        lang: Vec<String>,
    },
}

/// Run the CLI; returns the process exit code.
pub fn run(cli: Cli) -> Result<i32> {
    match cli.command {
        Some(Command::Data(d)) => data(d),
        None => {
            println!("{}", lang::codes().join(" "));
            Ok(0)
        }
    }
}

fn data(cmd: DataCmd) -> Result<i32> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match cmd {
        DataCmd::Langs => {
            writeln!(out, "{:<4} {:<11} {:<10} {:<9} {:<7} {:<8} native", "code", "name", "script", "group", "latin", "set")?;
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
                None => tokenizer::suite_tokenizer(&tokenizer::cache_dir(&runs), vocab)?,
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
        DataCmd::Check { lang: only } => {
            suite::check(&only)?;
            let n = if only.is_empty() { lang::all().len() } else { only.len() };
            writeln!(out, "ok: {n} language file(s)")?;
        }
    }
    out.flush()?;
    Ok(0)
}
