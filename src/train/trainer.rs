//! The training loop: an explicit, readable SFT / LM loop over a run directory.
//!
//! `train(run)` resumes from the run's latest checkpoint (a fork starts with its parent's
//! checkpoint copied in), trains to `train.max_steps`, evaluates, checkpoints, obeys the
//! control file and SIGTERM, and reports everything as events.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use candle_core::{DType, Device};
use candle_nn::VarMap;

use super::batch::{plan_micro_batches, step_gradients};
use super::evaluate::Evaluator;
use super::evalwatch::{EvalWatch, Round};
use super::model::Model;
use super::ops::Kernels;
use super::optim::{AdamW, AdamWConfig};
use super::schedule::lr_at;
use crate::config::{DeviceSpec, RunConfig};
use crate::data::jsonl::{DataSource, UserData};
use crate::data::sampler::{Sampler, SamplerState};
use crate::data::suite::GenOptions;
use crate::data::tokenizer::Tok;
use crate::runs::checkpoint::{self, TrainState};
use crate::runs::control::{Command, ControlWatch};
use crate::runs::events::{Best, Body, Event, EventWriter, Examples, State};
use crate::runs::lock::RunLock;
use crate::runs::RunDir;
use crate::tensorboard;

/// The fixed cost of one micro-batch's forward and backward pass, in padded input tokens, that
/// `train.group_by_length` weighs against the padding it saves.
pub(crate) const MICRO_BATCH_OVERHEAD: usize = 128;

static TERM: AtomicBool = AtomicBool::new(false);

extern "C" fn on_term(_sig: libc::c_int) {
    TERM.store(true, Ordering::SeqCst);
}

/// Whether SIGTERM or SIGINT arrived (the loop stops at its next step boundary; setup stops
/// between its stages).
fn interrupted() -> bool {
    TERM.load(Ordering::SeqCst)
}

/// SIGTERM and SIGINT ask the loop to checkpoint and stop at the next step boundary, and setup
/// to stop before the loop starts.
fn install_signal_handlers() {
    #[cfg(unix)]
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGTERM, on_term as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_term as *const () as libc::sighandler_t);
    }
}

/// Give this process its CPU thread budget (before any parallel work starts), at most 4 × the
/// machine's cores (a config checked on another machine, a Slurm job's node, may ask for more).
pub fn set_thread_budget(threads: usize) {
    let threads = threads.min(crate::util::max_threads());
    if threads > 0 {
        std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
        let _ = rayon::ThreadPoolBuilder::new().num_threads(threads).build_global();
    }
}

/// How a training process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Finished,
    Stopped,
    /// Paused, and the process should exit (a supervised run frees its slot).
    Paused,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Finished => "finished",
            Outcome::Stopped => "stopped",
            Outcome::Paused => "paused",
        }
    }
}

/// How to train.
#[derive(Debug, Clone, Copy, Default)]
pub struct TrainOptions {
    /// No progress lines on stdout.
    pub quiet: bool,
    /// On pause: checkpoint and return [`Outcome::Paused`] (the supervisor restarts the run on
    /// resume) instead of waiting in place for a resume request.
    pub pause_exits: bool,
}

/// The device a run asks for.
pub fn select_device(spec: DeviceSpec) -> Result<Device> {
    match spec {
        DeviceSpec::Cpu => Ok(Device::Cpu),
        DeviceSpec::Auto => {
            #[cfg(feature = "cuda")]
            if let Ok(d) = Device::new_cuda(0) {
                return Ok(d);
            }
            Ok(Device::Cpu)
        }
        DeviceSpec::Cuda(idx) => {
            let idx = idx.unwrap_or(0);
            #[cfg(feature = "cuda")]
            {
                Device::new_cuda(idx).with_context(|| format!("opening GPU {idx}"))
            }
            #[cfg(not(feature = "cuda"))]
            {
                let _ = idx;
                Err(crate::error::bad_input(format!(
                    "device '{spec}': this mixscope was built without the `cuda` feature"
                )))
            }
        }
    }
}

/// Refuse a device this build cannot open (bad input naming the config's `device`), before a
/// run is created: a `cuda` device in a build without the `cuda` feature, or a GPU that does not
/// open.
pub fn check_device(loaded: &crate::config::Loaded) -> Result<()> {
    let spec = loaded.config.device;
    if let DeviceSpec::Cuda(idx) = spec {
        #[cfg(not(feature = "cuda"))]
        {
            let _ = idx;
            return Err(
                loaded.field_error("device", format!("'{spec}': this mixscope was built without the `cuda` feature"))
            );
        }
        #[cfg(feature = "cuda")]
        {
            let i = idx.unwrap_or(0);
            if let Err(e) = Device::new_cuda(i) {
                return Err(loaded.field_error("device", format!("'{spec}': GPU {i} does not open: {e}")));
            }
        }
    }
    Ok(())
}

pub fn dtype_of(s: &str) -> DType {
    match s {
        "bf16" => DType::BF16,
        "f16" => DType::F16,
        _ => DType::F32,
    }
}

/// Everything a loop iteration needs.
struct Session {
    run: RunDir,
    cfg: RunConfig,
    tok: Tok,
    model: Model,
    varmap: VarMap,
    opt: AdamW,
    sampler: Sampler,
    source: DataSource,
    events: EventWriter,
    /// `<run>/tensorboard/`, unless `[logging] tensorboard = false` (or it failed).
    tensorboard: Option<tensorboard::Writer>,
    control: ControlWatch,
    state: TrainState,
    evaluator: Evaluator,
    last_checkpoint: Option<u64>,
    /// The best selection loss among this run's own checkpoint events (each checkpoint event
    /// carries it, so that a reader needs only the last one).
    own_best: Best,
    /// Warning events this run has logged, and what watches its loss for them.
    warnings: u64,
    watch: LossWatch,
    /// What watches the evaluations for one that falls.
    eval_watch: EvalWatch,
    last_eval: Option<u64>,
    last_eval_loss: Option<f64>,
    quiet: bool,
    pause_exits: bool,
}

/// Train a run to its `max_steps` (or until stopped or paused).
pub fn train(run: &RunDir, opts: &TrainOptions) -> Result<Outcome> {
    let lock = RunLock::acquire(&run.path)?;
    train_locked(run, lock, opts)
}

/// [`train`] with the run's lock already held (taken when the run was created, or before its
/// config was checked), so that no other process can slip in between.
pub fn train_locked(run: &RunDir, lock: RunLock, opts: &TrainOptions) -> Result<Outcome> {
    let _lock = lock;
    // Ctrl-C is obeyed from here on, setup included (it spawns threads, loads data and models).
    install_signal_handlers();
    // Nothing is written through a link out of the run directory.
    run.check_links()?;
    let cfg = run.read_config()?;
    set_thread_budget(cfg.threads);
    super::tune_allocator();
    let mut events = EventWriter::open(&run.events_path())?;
    let events_path = run.events_path();
    let prev_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        // Best effort: a panic in the trainer leaves a `failed` status with its message.
        if let Ok(mut w) = EventWriter::open(&events_path) {
            let msg = format!("trainer panicked: {info}");
            let _ = w.write(&Event::new(0, Body::Status { state: State::Failed, message: Some(msg) }));
        }
        prev_hook(info);
    }));
    match setup_and_run(run, cfg, *opts) {
        Ok(o) => Ok(o),
        Err(e) => {
            let msg = format!("{e:#}");
            let step = run.latest_checkpoint().ok().flatten().unwrap_or(0);
            let _ = events.write(&Event::new(step, Body::Status { state: State::Failed, message: Some(msg) }));
            let _ = events.sync();
            Err(e)
        }
    }
}

/// Setup was interrupted (Ctrl-C, SIGTERM): the run is stopped before it trained, with
/// nothing else written.
fn stopped_in_setup(run: &RunDir) -> Result<Outcome> {
    let step = run.latest_checkpoint().ok().flatten().unwrap_or(0);
    let mut w = EventWriter::open(&run.events_path())?;
    let msg = "stopped by a signal during setup, before training".to_string();
    w.write(&Event::new(step, Body::Status { state: State::Stopped, message: Some(msg) }))?;
    w.sync()?;
    Ok(Outcome::Stopped)
}

fn setup_and_run(run: &RunDir, cfg: RunConfig, opts: TrainOptions) -> Result<Outcome> {
    // Between the stages of setup: a signal stops the trainer before it trains.
    macro_rules! stop_if_interrupted {
        () => {
            if interrupted() {
                return stopped_in_setup(run);
            }
        };
    }
    stop_if_interrupted!();
    checkpoint::clean_temporaries(run);
    crate::runs::samples::clean_temporaries(run);
    let tok = Tok::load(&run.tokenizer_path())?;
    let mixture = cfg.mixture()?;
    let user = UserData::load(&cfg.data.files)?;
    stop_if_interrupted!();
    let source = DataSource { opts: GenOptions { mr_levels: cfg.data.mr_levels.clone() }, user };
    // The queue's GPU for a run that asked for any (`auto`, `cuda`), passed by its monitor.
    let spec = match std::env::var("MIXSCOPE_DEVICE").map(|d| d.parse::<DeviceSpec>()) {
        Ok(Ok(d @ DeviceSpec::Cuda(Some(_)))) if cfg.device.takes_any_gpu() => d,
        _ => cfg.device,
    };
    let device = select_device(spec)?;
    stop_if_interrupted!();
    let dtype = dtype_of(&cfg.model.dtype);
    let mcfg = crate::model::of_run(&cfg, &tok)?;
    let kernels = match cfg.model.kernels.as_str() {
        "composite" => Kernels::Composite,
        "fused" => Kernels::Fused,
        _ if device.is_cpu() => Kernels::Fused,
        _ => Kernels::Composite,
    };
    let master = if cfg.model.master_dtype == "same" { dtype } else { DType::F32 };
    let varmap = VarMap::new();
    let mut model = Model::new(&mcfg, &varmap, &device, master, cfg.seed)?;
    model.set_compute_dtype(dtype)?;
    model.set_kernels(kernels);
    model.set_recompute(cfg.train.gradient_checkpointing);
    let t = &cfg.train;
    let mut opt =
        AdamW::new(&varmap, AdamWConfig { beta1: t.beta1, beta2: t.beta2, eps: t.eps, weight_decay: t.weight_decay })?;
    opt.freeze(&t.freeze)?;
    stop_if_interrupted!();
    let mut fresh_moments = false;
    let (state, resumed_from) = match run.latest_checkpoint()? {
        Some(step) => {
            let dir = run.checkpoint_dir(step);
            // Checked before it is used: step, checksums, and the run's own record of the step.
            let v = checkpoint::load_verified(&dir, step)?;
            check_against_events(run, &dir, &v.state)?;
            load_weights(&varmap, &model, &dir.join(checkpoint::MODEL_FILE))?;
            let optim = dir.join(checkpoint::OPTIM_FILE);
            // Only a run's starting checkpoint may hold weights alone (a shipped base's step, or
            // a fork of one): the run then starts with fresh moments. Anywhere else the
            // optimizer's state is needed to resume exactly.
            let starting = cfg.lineage.as_ref().is_some_and(|l| l.fork_step == step);
            if v.optimizer || !starting {
                opt.load(&optim).with_context(|| format!("loading {}", optim.display()))?;
            } else {
                fresh_moments = true;
            }
            (v.state, Some(step))
        }
        None => {
            if cfg.model.source != "tiny" {
                let dir = crate::model::files::resolve_model_dir(&cfg.model.source, cfg.model.revision.as_deref())?;
                super::pretrained::load_pretrained(&varmap, &model, &dir, dtype)?;
            }
            let s = TrainState {
                step: 0,
                tokens: 0,
                sampler: SamplerState::new(cfg.seed),
                best_loss: None,
                best_step: None,
                control_seq: 0,
                train_seconds: 0.0,
                eval_loss: None,
                eval_pending: false,
                sha256: None,
            };
            (s, None)
        }
    };
    stop_if_interrupted!();
    let sampler = Sampler::resume(&mixture, state.sampler.clone());
    let control = ControlWatch::new_from(&run.path, state.control_seq);
    let evaluator = Evaluator::new(&cfg, &mixture, &source, &tok)?;
    stop_if_interrupted!();
    let events = EventWriter::open(&run.events_path())?;
    let tensorboard = match cfg.logging.tensorboard {
        true => tensorboard::Writer::create(&run.path.join(tensorboard::DIR))
            .map_err(|e| eprintln!("warning: no TensorBoard log for this run: {e:#}"))
            .ok(),
        false => None,
    };
    let msg = match resumed_from {
        Some(s) if fresh_moments => format!(
            "started from {} @{s} with fresh optimizer moments (the checkpoint holds weights only): {} parameters, {}",
            parent_of(&cfg),
            mcfg.num_params(),
            device_name(&device)
        ),
        // A run's first start from its parent's checkpoint (an SFT run from its base, a fork)
        // is a start, not a resume: resume is when a run continues itself.
        Some(s) if starting_at(&cfg, s) => {
            format!("started from {} @{s}: {} parameters, {}", parent_of(&cfg), mcfg.num_params(), device_name(&device))
        }
        Some(s) => format!("resumed from step {s}"),
        None => format!("started: {} parameters, {}", mcfg.num_params(), device_name(&device)),
    };
    // The loss of a model that predicts nothing: the uniform distribution over its outputs.
    let uniform = (mcfg.vocab_size as f64).ln();
    let own_events = match resumed_from {
        Some(_) => crate::runs::events::read_all(&run.events_path())?.0,
        None => Vec::new(),
    };
    let own = own_record(&own_events);
    let eval_watch = EvalWatch::new(previous_evaluation(run, &cfg, &own_events, state.step));
    let mut s = Session {
        run: run.clone(),
        cfg,
        tok,
        model,
        varmap,
        opt,
        sampler,
        source,
        events,
        tensorboard,
        control,
        last_checkpoint: resumed_from,
        own_best: own.0,
        warnings: own.1,
        watch: LossWatch::new(uniform),
        eval_watch,
        last_eval: None,
        last_eval_loss: None,
        state,
        evaluator,
        quiet: opts.quiet,
        pause_exits: opts.pause_exits,
    };
    s.status(State::Running, Some(msg))?;
    if let Some(step) = resumed_from {
        s.log_checkpoint_if_missing(step)?;
    }
    s.run_loop()
}

/// Whether `step` is the checkpoint a run starts from (its parent's, linked at creation).
fn starting_at(cfg: &RunConfig, step: u64) -> bool {
    cfg.lineage.as_ref().is_some_and(|l| l.fork_step == step)
}

fn parent_of(cfg: &RunConfig) -> &str {
    cfg.lineage.as_ref().map_or("its parent", |l| l.parent.as_str())
}

/// The best selection loss among the checkpoint events a run has logged, and its number of
/// warning events.
fn own_record(events: &[Event]) -> (Best, u64) {
    events.iter().fold((Best::default(), 0), |(b, w), e| match &e.body {
        Body::Checkpoint { eval_loss, .. } => (b.after(e.step, *eval_loss), w),
        Body::Warning { .. } => (b, w + 1),
        _ => (b, w),
    })
}

/// The evaluation a trainer starting at `step` compares its next one with: the run's own last
/// at or before `step` (a resumed run), else its parent's at the fork step (a fork, or a run
/// from a base model, whose curves continue its parent's), when the parent is in the runs root.
fn previous_evaluation(run: &RunDir, cfg: &RunConfig, own: &[Event], step: u64) -> Option<(u64, Round)> {
    if let Some(prev) = EvalWatch::last_round(own, step) {
        return Some(prev);
    }
    let lineage = cfg.lineage.as_ref().filter(|l| l.fork_step == step)?;
    let parent = run.path.parent()?.join(&lineage.parent);
    let (events, _, _) = crate::runs::events::read_all(&parent.join("events.jsonl")).ok()?;
    EvalWatch::last_round(&events, step).filter(|(s, _)| *s == step)
}

/// Watches the training loss for what a person should look at, step by step: a loss above
/// [`LossWatch::SPIKE`] × its slow average for [`LossWatch::SPIKE_STEPS`] steps, and a loss
/// pinned at ln V (the uniform distribution over the vocabulary: the model predicts nothing)
/// for [`LossWatch::PINNED_STEPS`] steps. Each warns once per episode. It starts afresh when a
/// trainer starts (a resumed run's average is rebuilt from its next steps).
#[derive(Debug, Clone)]
pub struct LossWatch {
    uniform: f64,
    ema: Option<f64>,
    seen: u64,
    high: u64,
    pinned: u64,
}

impl LossWatch {
    pub const SPIKE: f64 = 2.0;
    pub const SPIKE_STEPS: u64 = 10;
    pub const PINNED_STEPS: u64 = 50;
    /// Steps before a spike can be told from the start of training.
    const SETTLE: u64 = 100;
    const ALPHA: f64 = 0.01;

    pub fn new(uniform: f64) -> LossWatch {
        LossWatch { uniform, ema: None, seen: 0, high: 0, pinned: 0 }
    }

    /// Fold in one step's loss; the warning it calls for, if any.
    pub fn step(&mut self, loss: f64) -> Option<String> {
        self.seen += 1;
        let mut out = None;
        if (loss - self.uniform).abs() < 0.02 * self.uniform {
            self.pinned += 1;
            if self.pinned == Self::PINNED_STEPS {
                out = Some(format!(
                    "the loss has stayed at {loss:.4} for {} steps: ln V = {:.4}, the uniform distribution over the vocabulary (the model predicts nothing; a rate too high?)",
                    Self::PINNED_STEPS,
                    self.uniform
                ));
            }
        } else {
            self.pinned = 0;
        }
        let ema = *self.ema.get_or_insert(loss);
        if self.seen > Self::SETTLE && loss > Self::SPIKE * ema {
            self.high += 1;
            if self.high == Self::SPIKE_STEPS && out.is_none() {
                out = Some(format!(
                    "the loss has been above {}× its recent level ({ema:.4}) for {} steps: {loss:.4}",
                    Self::SPIKE,
                    Self::SPIKE_STEPS
                ));
            }
        } else {
            self.high = 0;
        }
        // The level a spike is measured against does not follow the spike.
        if self.high == 0 {
            self.ema = Some(ema + Self::ALPHA * (loss - ema));
        }
        out
    }
}

/// A checkpoint the run resumes from agrees with the run's own record: the train event of its
/// step (when events.jsonl has one) counted the tokens its state.json records. A state.json
/// from another run, or edited, is refused (bad input naming both files).
fn check_against_events(run: &RunDir, dir: &Path, st: &TrainState) -> Result<()> {
    let (events, _, _) = crate::runs::events::read_all(&run.events_path())?;
    let logged = events.iter().rev().find_map(|e| match &e.body {
        Body::Train { tokens, .. } if e.step == st.step => Some(*tokens),
        _ => None,
    });
    if let Some(tokens) = logged.filter(|t| *t != st.tokens) {
        crate::bail_input!(
            "{}: records {} tokens at step {}, but {} says {tokens} at that step: the checkpoint is not this run's record",
            dir.join(checkpoint::STATE_FILE).display(),
            st.tokens,
            st.step,
            run.events_path().display()
        );
    }
    Ok(())
}

fn device_name(d: &Device) -> String {
    match d {
        Device::Cpu => format!("cpu ({} threads)", candle_core::utils::get_num_threads()),
        other => format!("{other:?}"),
    }
}

/// Load checkpoint weights into the model's variables; every variable must be present.
pub(crate) fn load_weights(varmap: &VarMap, model: &Model, path: &Path) -> Result<()> {
    let tensors =
        candle_core::safetensors::load(path, model.device()).with_context(|| format!("reading {}", path.display()))?;
    let data = varmap.data().lock().expect("varmap lock");
    for (name, var) in data.iter() {
        let Some(t) = tensors.get(name) else {
            return Err(crate::error::bad_input(format!("{}: tensor '{name}' is missing", path.display())));
        };
        if t.dims() != var.dims() {
            return Err(crate::error::bad_input(format!(
                "{}: tensor '{name}' has shape {:?}, the model needs {:?}",
                path.display(),
                t.dims(),
                var.dims()
            )));
        }
        var.set(&t.to_dtype(var.dtype())?)?;
    }
    Ok(())
}

impl Session {
    /// Append an event to the run's log, and its scalars to the TensorBoard file. The log is
    /// the record: a TensorBoard file that cannot be written is given up with a warning.
    fn emit(&mut self, body: Body) -> Result<()> {
        let ev = Event::new(self.state.step, body);
        self.events.write(&ev)?;
        self.tensorboard_do(|tb| tb.write(&ev));
        Ok(())
    }

    fn tensorboard_do(&mut self, f: impl FnOnce(&mut tensorboard::Writer) -> Result<()>) {
        if let Some(tb) = self.tensorboard.as_mut() {
            if let Err(e) = f(tb) {
                eprintln!("warning: TensorBoard log {} given up: {e:#}", tb.path().display());
                self.tensorboard = None;
            }
        }
    }

    fn status(&mut self, state: State, message: Option<String>) -> Result<()> {
        self.emit(Body::Status { state, message })?;
        self.events.sync()
    }

    fn run_loop(&mut self) -> Result<Outcome> {
        let max = self.cfg.train.max_steps;
        let mut window_tokens = 0u64;
        let mut window_start = Instant::now();
        while self.state.step < max {
            if let Some(o) = self.handle_control()? {
                return Ok(o);
            }
            // An evaluation a pause or stop interrupted runs before training goes on.
            if self.state.eval_pending {
                if self.evaluate(false)?.is_none() {
                    continue;
                }
                self.state.eval_pending = false;
                self.pending_eval_done()?;
            }
            let t0 = Instant::now();
            let (loss, grad_norm, tokens) = self.train_step()?;
            if !loss.is_finite() || !grad_norm.is_finite() {
                return self.diverged(loss, grad_norm);
            }
            let dt = t0.elapsed().as_secs_f64();
            self.state.train_seconds += dt;
            self.state.tokens += tokens;
            self.state.step += 1;
            window_tokens += tokens;
            let step = self.state.step;
            if let Some(message) = self.watch.step(loss) {
                self.warnings += 1;
                if !self.quiet {
                    println!("warning at step {step}: {message}");
                }
                self.emit(Body::Warning { message, value: Some(loss) })?;
            }
            if step % self.cfg.train.log_every == 0 || step == max {
                let secs = window_start.elapsed().as_secs_f64().max(1e-9);
                let tps = window_tokens as f64 / secs;
                window_tokens = 0;
                window_start = Instant::now();
                let st = self.sampler.state();
                let examples = Examples { lang: st.by_lang.clone(), task: st.by_task.clone() };
                let lr = lr_at(&self.cfg.train, step - 1);
                self.emit(Body::Train {
                    loss,
                    lr,
                    tokens: self.state.tokens,
                    tokens_per_s: tps,
                    examples,
                    grad_norm: Some(grad_norm),
                })?;
                if !self.quiet && (step % 10 == 0 || step == max) {
                    println!("step {step}/{max}  loss {loss:.4}  lr {lr:.2e}  {tps:.0} tok/s");
                }
            }
            let eval_due = self.cfg.eval.every > 0 && step % self.cfg.eval.every == 0;
            let mut new_best = false;
            if eval_due || step == max {
                match self.evaluate(step == max)? {
                    Some(b) => new_best = b,
                    None => {
                        // Interrupted: the request is handled at the top of the loop, and the
                        // checkpoint it writes records the evaluation as still to do.
                        self.state.eval_pending = true;
                        continue;
                    }
                }
            }
            if step % self.cfg.checkpoint.every == 0 || step == max || new_best {
                self.checkpoint()?;
            }
        }
        if self.last_checkpoint != Some(self.state.step) {
            self.checkpoint()?;
        }
        self.status(State::Finished, None)?;
        Ok(Outcome::Finished)
    }

    /// A step whose loss or gradient norm is not finite (it was not applied): the run ends
    /// `failed` (`train.on_nonfinite = "stop"`) or `paused`, naming the step and the value; its
    /// last checkpoint is its last good state.
    fn diverged(&mut self, loss: f64, grad_norm: f64) -> Result<Outcome> {
        let step = self.state.step + 1;
        let what = if loss.is_finite() {
            format!("the gradient norm became {grad_norm} at step {step} (loss {loss:.4})")
        } else {
            format!("the loss became {loss} at step {step}")
        };
        let last = match self.run.latest_checkpoint()? {
            Some(k) => format!("the checkpoint at step {k} is the last good state"),
            None => "no checkpoint was written yet".into(),
        };
        let msg = format!("{what}; the step was not applied and {last}: lower train.lr or enable train.grad_clip");
        match self.cfg.train.on_nonfinite {
            crate::config::OnNonFinite::Stop => anyhow::bail!(msg),
            crate::config::OnNonFinite::Pause => {
                if !self.quiet {
                    println!("paused: {msg}");
                }
                self.status(State::Paused, Some(msg))?;
                Ok(Outcome::Paused)
            }
        }
    }

    /// Act on control requests and signals; `Some` when the loop must end.
    fn handle_control(&mut self) -> Result<Option<Outcome>> {
        if TERM.load(Ordering::SeqCst) {
            return self.stop("stopped by signal").map(Some);
        }
        let Some(cmd) = self.control.poll() else {
            return Ok(None);
        };
        self.state.control_seq = self.control.last_seq();
        match cmd {
            Command::Stop => self.stop("stopped on request").map(Some),
            Command::Checkpoint => {
                self.checkpoint()?;
                Ok(None)
            }
            Command::Resume => Ok(None),
            Command::Pause => {
                self.checkpoint_for_exit()?;
                self.status(State::Paused, None)?;
                if !self.quiet {
                    println!("paused at step {}", self.state.step);
                }
                if self.pause_exits {
                    return Ok(Some(Outcome::Paused));
                }
                loop {
                    std::thread::sleep(Duration::from_millis(200));
                    if TERM.load(Ordering::SeqCst) {
                        return self.stop("stopped by signal while paused").map(Some);
                    }
                    match self.control.poll() {
                        Some(Command::Resume) => {
                            self.state.control_seq = self.control.last_seq();
                            self.status(State::Running, Some("resumed".into()))?;
                            return Ok(None);
                        }
                        Some(Command::Stop) => {
                            self.state.control_seq = self.control.last_seq();
                            return self.stop("stopped on request").map(Some);
                        }
                        Some(Command::Checkpoint) | Some(Command::Pause) => {
                            self.state.control_seq = self.control.last_seq();
                        }
                        None => {}
                    }
                }
            }
        }
    }

    fn stop(&mut self, why: &str) -> Result<Outcome> {
        self.checkpoint_for_exit()?;
        self.status(State::Stopped, Some(why.into()))?;
        Ok(Outcome::Stopped)
    }

    /// One optimizer step; returns (mean loss, gradient norm, input tokens).
    fn train_step(&mut self) -> Result<(f64, f64, u64)> {
        let t = &self.cfg.train;
        let seq_len = self.cfg.data.seq_len;
        let mut encs = Vec::with_capacity(t.batch_size);
        for _ in 0..t.batch_size {
            let ex = self.sampler.next_example(&self.source)?;
            encs.push(self.tok.encode(&ex, seq_len)?);
        }
        let micro = t.batch_size / t.grad_accum;
        let pack = t.pack && self.model.can_pack();
        let groups: Vec<Vec<usize>> = if t.group_by_length && !pack {
            let lens: Vec<usize> = encs.iter().map(|e| e.ids.len().saturating_sub(1)).collect();
            plan_micro_batches(&lens, micro, MICRO_BATCH_OVERHEAD)
        } else {
            crate::train::batch::micro_batches_in_order(encs.len(), micro)
        };
        let step = step_gradients(&self.model, &encs, &groups, self.tok.pad, pack)?;
        let Some(grads) = step.grads else {
            anyhow::bail!("a batch with no response tokens at step {}: check data.seq_len", self.state.step + 1);
        };
        if !step.loss.is_finite() {
            return Ok((step.loss, f64::NAN, step.tokens));
        }
        let lr = lr_at(&self.cfg.train, self.state.step);
        let clip = (t.grad_clip > 0.0).then_some(t.grad_clip);
        // A gradient norm that is not finite applies nothing (the run stops or pauses).
        let norm = self.opt.step_clipped(&grads, lr, clip)?;
        Ok((step.loss, norm, step.tokens))
    }

    /// Evaluate; returns whether the held-out loss is a new best.
    /// Runs the held-out evaluation and reports it. A stop, pause or signal that arrives during
    /// it abandons it (nothing is reported; the request is handled at the step boundary), except
    /// for the `last` evaluation of the run.
    /// `None` when interrupted.
    fn evaluate(&mut self, last: bool) -> Result<Option<bool>> {
        self.last_eval = Some(self.state.step);
        let run_dir = self.run.path.clone();
        let seen = self.control.last_seq();
        let interrupted = move || {
            !last
                && (TERM.load(Ordering::SeqCst)
                    || crate::runs::control::read(&run_dir)
                        .is_some_and(|r| r.seq > seen && matches!(r.cmd, Command::Stop | Command::Pause)))
        };
        let Some(results) = self.evaluator.run(&self.model, &self.tok, &interrupted)? else {
            if !self.quiet {
                println!("eval at step {} interrupted by a request", self.state.step);
            }
            return Ok(None);
        };
        // The answers first: a reader that sees the eval events finds them.
        super::samples::store(&self.run, self.state.step, &results, self.state.best_step);
        for r in &results {
            self.emit(Body::Eval {
                task: r.task.clone(),
                lang: r.lang.clone(),
                group: r.group.clone(),
                loss: r.loss,
                metric: r.metric.clone(),
                value: r.value,
                n: r.n,
                lang_ok: r.lang_ok,
                scores: r.scores.clone(),
                ci: r.ci,
            })?;
        }
        self.tensorboard_do(|tb| tb.end_round());
        self.watch_evaluation(&results)?;
        let Some(sel) = self.evaluator.selection_loss(&results) else {
            return Ok(Some(false));
        };
        self.last_eval_loss = Some(sel);
        let better = self.state.best_loss.is_none_or(|b| sel < b);
        if better {
            self.state.best_loss = Some(sel);
            self.state.best_step = Some(self.state.step);
        }
        if !self.quiet {
            println!("eval at step {}: held-out loss {sel:.4}{}", self.state.step, if better { " (best)" } else { "" });
        }
        Ok(Some(better))
    }

    /// An evaluation that fell below the previous one (`EvalWatch`): one warning event naming
    /// every row that fell.
    fn watch_evaluation(&mut self, results: &[super::evaluate::EvalResult]) -> Result<()> {
        if let Some((message, value)) = self.eval_watch.warn(self.state.step, super::evalwatch::round_of(results)) {
            self.warnings += 1;
            if !self.quiet {
                println!("warning at step {}: {message}", self.state.step);
            }
            self.emit(Body::Warning { message, value: Some(value) })?;
        }
        Ok(())
    }

    /// A trainer killed after saving a checkpoint but before logging it left a checkpoint
    /// without its event (and its selection loss); log it now, from the checkpoint's state.
    /// A logged one is written to the new TensorBoard file again, in case only that write was
    /// lost.
    fn log_checkpoint_if_missing(&mut self, step: u64) -> Result<()> {
        let (events, _, _) = crate::runs::events::read_all(&self.run.events_path())?;
        let at = |kind: &str| events.iter().any(|e| e.step == step && e.kind() == kind);
        // Only a checkpoint this run saved: it trained that step (a fork's or a base's starting
        // checkpoint belongs to the run it came from).
        let dir = self.run.checkpoint_dir(step);
        let path = dir.strip_prefix(&self.run.path).unwrap_or(&dir).display().to_string();
        let body = self.checkpoint_body(path);
        if at("train") && !at("checkpoint") {
            self.emit(body)?;
            self.events.sync()?;
        } else if at("checkpoint") {
            // Logged; its TensorBoard record may not be (a kill between the two writes). Written
            // again, it is the same value at the same step.
            let ev = Event::new(step, body);
            self.tensorboard_do(|tb| tb.write(&ev));
        }
        Ok(())
    }

    /// Before a pause or stop: the checkpoint at this step, recording the request as handled
    /// (a trainer restarted from it must not see the request again) and whether the step's
    /// evaluation is still to do. A checkpoint written at this step before the request arrived
    /// gets its state.json rewritten; its tensors are this step's already.
    fn checkpoint_for_exit(&mut self) -> Result<()> {
        if self.last_checkpoint != Some(self.state.step) {
            return self.checkpoint();
        }
        self.state.control_seq = self.control.last_seq();
        checkpoint::rewrite_state(&self.run, &self.state)
    }

    /// After an evaluation that was pending: the checkpoint at its step records it as done
    /// (its selection loss, and the best step when it was a new best), logged again with it.
    fn pending_eval_done(&mut self) -> Result<()> {
        if self.last_checkpoint != Some(self.state.step) {
            return self.checkpoint();
        }
        self.state.eval_loss = self.last_eval_loss.filter(|_| self.last_eval == Some(self.state.step));
        checkpoint::rewrite_state(&self.run, &self.state)?;
        let dir = self.run.checkpoint_dir(self.state.step);
        let rel = dir.strip_prefix(&self.run.path).unwrap_or(&dir).display().to_string();
        let body = self.checkpoint_body(rel);
        self.emit(body)?;
        self.events.sync()
    }

    /// The event of a checkpoint at this step, the run's best updated with its selection loss.
    fn checkpoint_body(&mut self, path: String) -> Body {
        self.own_best = self.own_best.after(self.state.step, self.state.eval_loss);
        Body::Checkpoint { path, eval_loss: self.state.eval_loss, best: Some(self.own_best), warnings: self.warnings }
    }

    fn checkpoint(&mut self) -> Result<()> {
        self.state.sampler = self.sampler.state().clone();
        self.state.control_seq = self.control.last_seq();
        self.state.eval_loss = self.last_eval_loss.filter(|_| self.last_eval == Some(self.state.step));
        let varmap = &self.varmap;
        let opt = &self.opt;
        let dir = checkpoint::save(&self.run, &self.state, |tmp| {
            varmap.save(tmp.join(checkpoint::MODEL_FILE)).context("saving model weights")?;
            opt.save(tmp.join(checkpoint::OPTIM_FILE)).context("saving optimizer state")?;
            Ok(())
        })?;
        self.last_checkpoint = Some(self.state.step);
        let rel = dir.strip_prefix(&self.run.path).unwrap_or(&dir).display().to_string();
        let body = self.checkpoint_body(rel);
        self.emit(body)?;
        self.events.sync()?;
        checkpoint::prune(&self.run, self.cfg.checkpoint.keep_last, self.state.best_step, &[])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::LossWatch;

    fn warnings(losses: impl IntoIterator<Item = f64>) -> Vec<(usize, String)> {
        let mut w = LossWatch::new((512f64).ln());
        losses.into_iter().enumerate().filter_map(|(i, l)| w.step(l).map(|m| (i + 1, m))).collect()
    }

    fn jitter(i: usize) -> f64 {
        ((i * 2654435761) % 1000) as f64 / 1000.0 * 0.1 - 0.05
    }

    /// A loss that learns (fast at first, noisily) warns of nothing.
    #[test]
    fn a_learning_curve_warns_of_nothing() {
        let w = warnings((0..2000).map(|i| 1.0 + 5.0 * (-(i as f64) / 150.0).exp() + jitter(i)));
        assert!(w.is_empty(), "{w:?}");
    }

    /// A loss pinned at ln V warns once, after PINNED_STEPS steps, naming ln V.
    #[test]
    fn a_loss_pinned_at_the_uniform_distribution_warns_once() {
        let w = warnings((0..500).map(|i| if i < 5 { 6.0 - i as f64 } else { 512f64.ln() }));
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(w[0].0, 5 + LossWatch::PINNED_STEPS as usize);
        assert!(w[0].1.contains("6.2383") && w[0].1.contains("uniform"), "{}", w[0].1);
    }

    /// A loss far above its recent level for SPIKE_STEPS steps warns once per episode; a short
    /// blip does not.
    #[test]
    fn a_spike_that_lasts_warns_once_per_episode() {
        let curve = (0..800).map(|i| match i {
            300..=304 => 5.0, // a blip: 5 steps
            400..=449 => 3.0, // an episode: 50 steps
            600..=629 => 4.0, // another
            _ => 1.0 + jitter(i),
        });
        let w = warnings(curve);
        let at: Vec<usize> = w.iter().map(|(s, _)| *s).collect();
        assert_eq!(at, [400 + LossWatch::SPIKE_STEPS as usize, 600 + LossWatch::SPIKE_STEPS as usize], "{w:?}");
        assert!(w[0].1.contains("3.0000"), "{}", w[0].1);
    }
}
