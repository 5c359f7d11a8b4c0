//! The command line (`mixscope --help`, `mixscope man`). Each subcommand is a thin layer over the library.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

mod data;
mod notes;
mod runs;

#[derive(Parser, Debug)]
#[command(name = "mixscope", version, about = "Run and watch multilingual post-training experiments")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// The terminal UI on a runs root (the default command).
    Tui {
        #[arg(long)]
        runs: Option<PathBuf>,
        /// Start the built-in demo experiment right away.
        #[arg(long)]
        demo: bool,
        /// Colour theme: dark, light, colorblind, or a theme file.
        #[arg(long, env = "MIXSCOPE_THEME")]
        theme: Option<String>,
    },
    /// Train one run in the foreground (headless). Rerunning on an existing run directory
    /// resumes it from its latest checkpoint.
    Train {
        /// The run config (TOML).
        config: PathBuf,
        /// The run directory (default: a new one under the runs root).
        #[arg(long)]
        run_dir: Option<PathBuf>,
        /// The runs root (default: $MIXSCOPE_RUNS or ./runs).
        #[arg(long)]
        runs: Option<PathBuf>,
        /// Override a config key: max_steps, checkpoint_every, eval_every, seed, threads, lr,
        /// batch_size, mixture, model, or any dotted path (train.warmup_steps=10).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// No progress lines on stdout.
        #[arg(long, short)]
        quiet: bool,
    },
    /// Start a run as a supervised child process (queued until a slot is free); prints its id.
    Launch {
        config: PathBuf,
        #[arg(long)]
        runs: Option<PathBuf>,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// Where the trainer runs: local (this machine's queue) or slurm (an sbatch job;
        /// `[slurm]` in the config says partition, GPUs, time, account).
        #[arg(long, value_name = "local|slurm")]
        launcher: Option<String>,
        /// Launch one run per seed, a group: a count (3: the config's seed and the next two)
        /// or a list (0,3,7).
        #[arg(long, value_name = "K|S1,S2,...")]
        seeds: Option<String>,
    },
    /// List runs: state, step, loss, best held-out loss, mixture, lineage, device, age, tags.
    Ls {
        #[arg(long)]
        runs: Option<PathBuf>,
        /// One JSON array of run objects.
        #[arg(long)]
        json: bool,
        /// Only the runs carrying this tag (repeated, or a comma list: every one of them).
        #[arg(long = "tag", value_name = "TAG[,TAG...]")]
        tags: Vec<String>,
    },
    /// A run's note: `note RUN "text"` sets it ("" removes it), `note RUN` prints it. A group
    /// (its name or `g:` id): each of its runs.
    Note {
        run: String,
        /// The note (none: print it).
        text: Option<String>,
        /// Add the text as a new line under the note.
        #[arg(long, requires = "text")]
        append: bool,
        #[arg(long)]
        runs: Option<PathBuf>,
    },
    /// A run's tags: `tag RUN +a -b c` adds a and c, removes b, prints the tags (letters,
    /// digits, '-', '_', '.'). A group (its name or `g:` id): each of its runs.
    Tag {
        run: String,
        /// +TAG or TAG adds it, -TAG removes it.
        #[arg(value_name = "+TAG|-TAG", allow_hyphen_values = true)]
        changes: Vec<String>,
        #[arg(long)]
        runs: Option<PathBuf>,
    },
    /// Pause a run (it checkpoints and frees its slot).
    Pause {
        run: String,
        #[arg(long)]
        runs: Option<PathBuf>,
    },
    /// Resume a paused or stopped run from its latest checkpoint.
    Resume {
        run: String,
        #[arg(long)]
        runs: Option<PathBuf>,
    },
    /// Stop a run (a live trainer checkpoints first).
    Stop {
        run: String,
        #[arg(long)]
        runs: Option<PathBuf>,
    },
    /// Compare runs or groups of seeds: per-language metrics at the latest and the best step,
    /// deltas with 95 % intervals (across seeds for groups), seen / unseen averages, ratio to
    /// English.
    Compare {
        /// Two or more runs or groups (a run id, a name, a group id, `g:1a2b3c4d`).
        #[arg(num_args = 2.., required = true)]
        runs_to_compare: Vec<String>,
        #[arg(long)]
        runs: Option<PathBuf>,
        #[arg(long)]
        json: bool,
        /// Mark every delta whose own interval excludes zero (no adjustment for the rows of a
        /// task being compared together).
        #[arg(long)]
        unadjusted: bool,
    },
    /// What differs between two runs' or two groups' configs (mixture, rate, seed, frozen
    /// parameters, model, steps, parent and fork step, ...): every key whose values differ, the
    /// keys equal in both left out.
    Diff {
        /// A run or a group (a run id, a name, a group id `g:1a2b3c4d`).
        a: String,
        /// The other.
        b: String,
        #[arg(long)]
        runs: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Show how a run's model answers held-out examples at a checkpoint: prompt, reference,
    /// generation and score, as its evaluations scored them.
    Samples {
        run: String,
        /// Task (mr, sm, if, or a user task).
        #[arg(long, default_value = "mr")]
        task: String,
        /// Language code.
        #[arg(long, default_value = "en")]
        lang: String,
        /// Checkpoint step (default: the latest).
        #[arg(long)]
        step: Option<u64>,
        /// How many examples.
        #[arg(long, default_value_t = 5)]
        n: usize,
        /// The answers the run stored at that evaluation (`samples/`), instead of regenerating
        /// them from the checkpoint (default step: the latest stored).
        #[arg(long)]
        stored: bool,
        #[arg(long)]
        runs: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Launch a sweep: every point of a grid over config values (N examples per language,
    /// tasks, seeds, ...) is one run in the queue, grouped as one sweep in `ls`, the TUI and
    /// `report`. Prints the sweep id and its runs.
    Sweep {
        /// The sweep file (TOML: name, config, [set], [grid], [analysis]).
        sweep: PathBuf,
        #[arg(long)]
        runs: Option<PathBuf>,
        /// Check every point and print its settings; launch nothing.
        #[arg(long)]
        dry_run: bool,
        /// Wait until every run of the sweep has ended, printing each change of state.
        #[arg(long)]
        wait: bool,
        /// Replace a grid variable's values: VAR=V1,V2 (repeatable).
        #[arg(long = "grid", value_name = "VAR=VALUES")]
        grid: Vec<String>,
        /// Where every point's trainer runs: local or slurm (one sbatch job per point).
        #[arg(long, value_name = "local|slurm")]
        launcher: Option<String>,
    },
    /// Write a report: CSV of every per-language metric per run and step, per-run aggregates,
    /// sweep tables (score vs N with error bars, Spearman, plateau, oscillation), and figures
    /// (SVG and PNG) with an index.html.
    Report {
        #[arg(long)]
        runs: Option<PathBuf>,
        /// The directory to write (created; files in it are replaced).
        #[arg(long)]
        out: PathBuf,
        /// Only this sweep (id, unique prefix or name).
        #[arg(long)]
        sweep: Option<String>,
        /// Only these runs or groups (a run id, a name, a group id `g:1a2b3c4d`).
        #[arg(value_name = "RUN|GROUP")]
        only: Vec<String>,
    },
    /// Benchmarks: measured figures next to their targets.
    Bench {
        /// tui | train | real | sgemm | gpu | memory | eval (`real`: training and generation at
        /// the SmolLM2-135M and Qwen2.5-0.5B shapes next to PyTorch, whose Python
        /// `MIXSCOPE_PEER_PYTHON` names; `sgemm`: the 135M shape's linear products, ours against
        /// gemm; `memory`: activation memory with and without gradient checkpointing)
        what: String,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        /// Smaller sizes (a quick look, not the reported figures).
        #[arg(long)]
        quick: bool,
        /// The run whose evaluation `bench eval` measures (its latest checkpoint).
        #[arg(long)]
        run: Option<String>,
        #[arg(long)]
        runs: Option<PathBuf>,
        /// `bench real`: measure one configuration (SHAPE:train or SHAPE:generate) in this
        /// process and print it as JSON (internal: each runs in its own process); `bench
        /// memory`: graph, parts or checkpointed.
        #[arg(long, hide = true)]
        one: Option<String>,
        /// `bench real`: alternated rounds of each shape's three training configurations, each
        /// reported as its median round (the VM's speed drifts; one round is one sample).
        #[arg(long, default_value_t = 1)]
        rounds: usize,
        /// `bench real`: only this shape (smollm2-135m, qwen2.5-0.5b); repeatable.
        #[arg(long)]
        shape: Vec<String>,
    },
    /// The monitor of a launched run (internal).
    #[command(name = "_supervise", hide = true)]
    Supervise {
        run_dir: PathBuf,
        #[arg(long)]
        runs: PathBuf,
        #[arg(long)]
        lock_fd: Option<i32>,
    },
    /// The trainer of a launched run (internal).
    #[command(name = "_run", hide = true)]
    RunInternal {
        run_dir: PathBuf,
        #[arg(long)]
        runs: PathBuf,
    },
    /// Fork a run at a checkpoint with a new mixture; prints the new run id.
    Fork {
        /// The run, or a group (a name its runs share, or its id, `g:1a2b3c4d`): every run of a group is
        /// forked at the same step, making a new group.
        run: String,
        /// The checkpoint step (default: the latest).
        #[arg(long)]
        at: Option<u64>,
        /// The new mixture SPEC.
        #[arg(long)]
        mix: String,
        /// A name for the new run.
        #[arg(long)]
        name: Option<String>,
        /// The step the fork trains to (default: the parent's last step, or as many steps
        /// again as the parent trained when forking at its end).
        #[arg(long)]
        max_steps: Option<u64>,
        /// Fork one run once per seed (a count or a list, as for `launch`): a group whose
        /// forks differ in their data stream from the fork step on.
        #[arg(long, value_name = "K|S1,S2,...")]
        seeds: Option<String>,
        #[arg(long)]
        runs: Option<PathBuf>,
    },
    /// Write a run's checkpoint as a Hugging Face model directory (config.json,
    /// model.safetensors, tokenizer files) that transformers' `from_pretrained` loads; or,
    /// with --tensorboard, its events as a TensorBoard log.
    #[command(group(clap::ArgGroup::new("what").required(true).args(["out", "tensorboard"])))]
    Export {
        /// The run: id, unique prefix, name or directory.
        run: String,
        /// The checkpoint step (default: the latest).
        #[arg(long, conflicts_with_all = ["best", "tensorboard"])]
        step: Option<u64>,
        /// The checkpoint of the best held-out loss.
        #[arg(long, conflicts_with = "tensorboard")]
        best: bool,
        /// The model directory to write (must not exist, or be empty).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Write the run's TensorBoard event file from its events.jsonl into DIR/<run id>/ (for
        /// runs logged before live TensorBoard files, or with `[logging] tensorboard = false`).
        #[arg(long, value_name = "DIR")]
        tensorboard: Option<PathBuf>,
        #[arg(long)]
        runs: Option<PathBuf>,
    },
    /// Print a shell completion script: bash, zsh, fish, elvish or powershell
    /// (e.g. `mixscope completions bash > ~/.local/share/bash-completion/completions/mixscope`).
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff), e.g. `mixscope man | man -l -`; with --out DIR, write
    /// mixscope.1 and one page per subcommand (mixscope-train.1, ...) into DIR.
    Man {
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
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
        /// The runs root (its .cache holds the demo tokenizer; default as for every command:
        /// $MIXSCOPE_RUNS, the user's config.toml, ./runs).
        #[arg(long)]
        runs: Option<std::path::PathBuf>,
    },
    /// Check the suite's language files (every template against every list entry, and the
    /// script of the generated text).
    Check {
        /// Only these languages (default: all).
        #[arg(long, value_delimiter = ',')]
        lang: Vec<String>,
    },
    /// Turn a Hugging Face dataset (parquet or JSONL files of one config and split, from the
    /// cache or downloaded) into mixscope JSONL for `data.files`, by a field mapping.
    /// `--presets` lists the paper's sources.
    Pull {
        /// The dataset repository (org/name) or a local directory; optional with --preset.
        repo: Option<String>,
        /// A documented source: xlsum, mgsm, mcot-math, aya-dolly (its repo, split, mapping).
        #[arg(long)]
        preset: Option<String>,
        /// The dataset config (subset), e.g. a language.
        #[arg(long)]
        config: Option<String>,
        /// The split (default: the preset's, else train).
        #[arg(long)]
        split: Option<String>,
        #[arg(long)]
        revision: Option<String>,
        /// FIELD=TEMPLATE for prompt, response, lang, task, answer; `{column}` is a column,
        /// `{config}` the config. Repeatable; overrides the preset.
        #[arg(long = "map", value_name = "FIELD=TEMPLATE")]
        map: Vec<String>,
        /// At most this many rows.
        #[arg(long)]
        limit: Option<usize>,
        /// The JSONL file to write.
        #[arg(long, required_unless_present = "presets")]
        out: Option<std::path::PathBuf>,
        /// List the presets and exit.
        #[arg(long)]
        presets: bool,
    },
}

/// Run the CLI; returns the process exit code.
pub fn run(cli: Cli) -> Result<i32> {
    crate::userconf::check()?;
    match cli.command {
        Some(Command::Data(d)) => data::data(d),
        Some(Command::Train { config, run_dir, runs, sets, quiet }) => {
            runs::train_cmd(&config, run_dir, runs, &sets, quiet)
        }
        Some(Command::Fork { run, at, mix, name, max_steps, seeds, runs }) => {
            let root = crate::runs::runs_root(runs.as_deref());
            let sel = crate::runs::select(&root, &run)?;
            let forks = match (&sel.group, seeds) {
                (Some(g), Some(_)) => crate::bail_input!(
                    "--seeds: {} is a group; its forks keep their runs' seeds (fork one run to give it seeds)",
                    g.id
                ),
                (Some(_), None) => crate::supervisor::fork_group(&root, &sel.runs, at, &mix, name, max_steps)?,
                (None, seeds) => {
                    let parent = &sel.runs[0];
                    let seeds = match seeds {
                        Some(s) => crate::supervisor::parse_seeds(&s, parent.read_config()?.seed)?,
                        None => Vec::new(),
                    };
                    crate::supervisor::fork_seeds(&root, parent, at, &mix, name, max_steps, &seeds)?
                }
            };
            if let Some(f) = forks.iter().find(|f| f.fresh_optimizer) {
                eprintln!(
                    "note: checkpoint {} of {} holds weights only (a shipped base's step): the fork starts with fresh optimizer moments",
                    f.step,
                    sel.label
                );
            }
            for f in forks {
                println!("{}", f.run.id());
            }
            Ok(0)
        }
        Some(Command::Launch { config, runs, mut sets, launcher, seeds }) => {
            let root = crate::runs::runs_root(runs.as_deref());
            if let Some(l) = launcher {
                sets.insert(0, format!("launcher={l}"));
            }
            for run in crate::supervisor::launch_seeds(&root, &config, &sets, seeds.as_deref())? {
                println!("{}", run.id());
            }
            Ok(0)
        }
        Some(Command::Export { run, step, best, out, tensorboard, runs }) => {
            let root = crate::runs::runs_root(runs.as_deref());
            // A group exports each of its runs (models into OUT/<run id>/).
            let sel = crate::runs::select(&root, &run)?;
            let grouped = sel.runs.len() > 1;
            for rd in &sel.runs {
                if let Some(dir) = &tensorboard {
                    let e = crate::tensorboard::export_run(rd, dir)?;
                    println!("exported {} events of run {} to {}", e.events, rd.id(), e.file.display());
                    continue;
                }
                let out = out.as_ref().expect("clap: --out or --tensorboard");
                let out = if grouped { out.join(rd.id()) } else { out.clone() };
                let which = match (step, best) {
                    (Some(s), _) => crate::train::export::Which::Step(s),
                    (None, true) => crate::train::export::Which::Best,
                    (None, false) => crate::train::export::Which::Latest,
                };
                let e = crate::train::export::export(rd, which, &out)?;
                println!(
                    "exported run {} step {} ({} tensors, {}) to {}",
                    rd.id(),
                    e.step,
                    e.tensors,
                    e.dtype,
                    e.dir.display()
                );
            }
            Ok(0)
        }
        Some(Command::Compare { runs_to_compare, runs, json, unadjusted }) => {
            runs::compare(&crate::runs::runs_root(runs.as_deref()), &runs_to_compare, json, unadjusted)
        }
        Some(Command::Diff { a, b, runs, json }) => runs::diff(&crate::runs::runs_root(runs.as_deref()), &a, &b, json),
        Some(Command::Samples { run, task, lang, step, n, stored, runs, json }) => {
            let run = crate::runs::resolve(&crate::runs::runs_root(runs.as_deref()), &run)?;
            let (step, samples) = match stored {
                true => crate::train::samples::stored(&run, step, &task, &lang, n)?,
                false => crate::train::samples::samples(&run, step, &task, &lang, n)?,
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "step": step, "samples": samples }))?);
                return Ok(0);
            }
            let mean = samples.iter().map(|s| s.score).sum::<f64>() / samples.len().max(1) as f64;
            println!("{} at step {step}: {task} {lang}, {} held-out examples, mean {mean:.3}", run.id(), samples.len());
            for (i, s) in samples.iter().enumerate() {
                println!(
                    "\n#{i}  score {:.3}{}",
                    s.score,
                    if s.lang_ok { "" } else { "  (not in the prompt's language)" }
                );
                println!("  prompt     {}", s.prompt.replace('\n', "\n             "));
                println!("  reference  {}", s.reference.replace('\n', "\n             "));
                println!("  generated  {}", s.generation.replace('\n', "\n             "));
            }
            Ok(0)
        }
        Some(Command::Bench { what, json, quick, run, runs, one, rounds, shape }) => {
            if let (Some(one), "real") = (&one, what.as_str()) {
                let (shape, mode) = one.split_once(':').unwrap_or((one, "train"));
                crate::bench::real::one(shape, mode, quick)?;
                return Ok(0);
            }
            if let (Some(one), "memory") = (&one, what.as_str()) {
                crate::bench::memory::one(one, quick)?;
                return Ok(0);
            }
            let rows = match what.as_str() {
                "tui" => crate::bench::tui::run(quick)?,
                "train" => crate::bench::train::run(quick)?,
                "real" => crate::bench::real::run(quick, rounds, &shape)?,
                "sgemm" => crate::bench::sgemm::run(quick)?,
                "gpu" => crate::bench::gpu::run(quick)?,
                "memory" => crate::bench::memory::run(quick)?,
                "eval" => {
                    let Some(spec) = run else { crate::bail_input!("bench eval: --run RUN names the run to measure") };
                    let r = crate::runs::resolve(&crate::runs::runs_root(runs.as_deref()), &spec)?;
                    crate::bench::eval::run(&r, quick)?
                }
                other => crate::bail_input!("bench '{other}': choose tui, train, real, sgemm, gpu, memory or eval"),
            };
            crate::bench::print(&rows, json);
            Ok(0)
        }
        Some(Command::Sweep { sweep, runs, dry_run, wait, grid, launcher }) => {
            runs::sweep(&crate::runs::runs_root(runs.as_deref()), &sweep, &grid, launcher, dry_run, wait)
        }
        Some(Command::Report { runs, out, sweep, only }) => {
            let root = crate::runs::runs_root(runs.as_deref());
            let r = crate::report::write(&root, &out, sweep.as_deref(), &only)?;
            println!("report of {} runs ({} sweeps) in {}", r.runs, r.sweeps, out.display());
            for f in &r.files {
                println!("  {f}");
            }
            for l in &r.summary {
                println!("{l}");
            }
            Ok(0)
        }
        Some(Command::Completions { shell }) => {
            clap_complete::generate(shell, &mut public_command(), "mixscope", &mut std::io::stdout());
            Ok(0)
        }
        Some(Command::Man { out }) => man(out.as_deref()),
        Some(Command::Ls { runs, json, tags }) => {
            runs::ls(&crate::runs::runs_root(runs.as_deref()), json, &notes::wanted_tags(&tags)?)
        }
        Some(Command::Note { run, text, append, runs }) => {
            notes::note(&crate::runs::runs_root(runs.as_deref()), &run, text, append)
        }
        Some(Command::Tag { run, changes, runs }) => {
            let (changes, runs) = notes::split_runs_option(changes, runs)?;
            notes::tag(&crate::runs::runs_root(runs.as_deref()), &run, &changes)
        }
        Some(Command::Pause { run, runs }) => runs::control(runs, &run, "pause"),
        Some(Command::Resume { run, runs }) => runs::control(runs, &run, "resume"),
        Some(Command::Stop { run, runs }) => runs::control(runs, &run, "stop"),
        Some(Command::Supervise { run_dir, runs, lock_fd }) => {
            crate::supervisor::monitor::supervise(&run_dir, &runs, lock_fd)
        }
        Some(Command::RunInternal { run_dir, runs }) => {
            let run = crate::runs::RunDir::new(run_dir);
            crate::runs::create::prepare_start(&runs, &run)?;
            // `pause = "hold"` keeps the trainer (and its slot) while paused.
            let pause_exits = run.read_config().map(|c| c.pause != crate::config::Pause::Hold).unwrap_or(true);
            crate::train::train(&run, &crate::train::TrainOptions { quiet: false, pause_exits })?;
            Ok(0)
        }
        Some(Command::Tui { runs, demo, theme }) => {
            let root = crate::runs::runs_root(runs.as_deref());
            crate::tui::run(&root, crate::tui::TuiOptions { theme, demo })?;
            Ok(0)
        }
        None => {
            let root = crate::runs::runs_root(None);
            crate::tui::run(&root, crate::tui::TuiOptions::default())?;
            Ok(0)
        }
    }
}

/// The command line as users see it: the internal subcommands (`_run`, `_supervise`) left out,
/// for completions and man pages.
fn public_command() -> clap::Command {
    let cmd = <Cli as clap::CommandFactory>::command();
    let subs: Vec<clap::Command> = cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned().collect();
    let mut public = clap::Command::new("mixscope").version(env!("CARGO_PKG_VERSION")).subcommands(subs);
    if let Some(about) = cmd.get_about() {
        public = public.about(about.clone());
    }
    public
}

/// Whether a command is a short-lived one whose output may go to a pipe that closes early
/// (`mixscope ls | head`): those exit quietly on SIGPIPE, as other command-line tools do.
pub fn exits_on_broken_pipe(cli: &Cli) -> bool {
    !matches!(
        cli.command,
        None | Some(Command::Tui { .. })
            | Some(Command::Train { .. })
            | Some(Command::Supervise { .. })
            | Some(Command::RunInternal { .. })
            | Some(Command::Sweep { .. })
    )
}

/// The man pages, generated from the clap definitions (hidden subcommands left out).
fn man(out: Option<&std::path::Path>) -> Result<i32> {
    let cmd = public_command();
    let Some(dir) = out else {
        clap_mangen::Man::new(cmd).render(&mut std::io::stdout())?;
        return Ok(0);
    };
    std::fs::create_dir_all(dir)?;
    let mut n = 0;
    let mut write = |name: String, c: clap::Command| -> Result<()> {
        let path = dir.join(format!("{name}.1"));
        let mut buf = Vec::new();
        clap_mangen::Man::new(c).title(name.to_uppercase()).render(&mut buf)?;
        std::fs::write(&path, buf).with_context(|| format!("writing {}", path.display()))?;
        println!("{}", path.display());
        n += 1;
        Ok(())
    };
    write("mixscope".into(), cmd.clone())?;
    for sub in cmd.get_subcommands() {
        let name = format!("mixscope-{}", sub.get_name());
        write(name.clone(), sub.clone().name(name))?;
    }
    Ok(0)
}
