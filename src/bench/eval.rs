//! `mixscope bench eval --run RUN`: what evaluation costs a run. One full evaluation of the
//! run's held-out sets (response loss of every set, greedy generations scored by the task
//! metrics) from its latest checkpoint, at several generation batch sizes side by side, and the
//! share of the run's wall time its evaluations take at its `eval.every`, with the training
//! seconds per step read from its own events.

use std::time::Instant;

use anyhow::Result;

use super::Row;
use crate::data::jsonl::{DataSource, UserData};
use crate::data::suite::GenOptions;
use crate::runs::RunDir;
use crate::train::evaluate::{Evaluator, GENERATE_BATCH};

/// The median seconds between consecutive train events one step apart (steps without an
/// evaluation or checkpoint between them).
fn seconds_per_step(run: &RunDir) -> Result<Option<f64>> {
    use crate::runs::events::Body;
    let (events, _, _) = crate::runs::events::read_all(&run.events_path())?;
    let mut gaps = Vec::new();
    let mut last: Option<(u64, f64)> = None;
    for e in &events {
        match e.body {
            Body::Train { .. } => {
                if let Some((s, t)) = last {
                    if e.step == s + 1 {
                        gaps.push(e.time - t);
                    }
                }
                last = Some((e.step, e.time));
            }
            _ => last = None,
        }
    }
    gaps.sort_by(f64::total_cmp);
    Ok((!gaps.is_empty()).then(|| gaps[gaps.len() / 2]))
}

pub fn run(run: &RunDir, quick: bool) -> Result<Vec<Row>> {
    let (cfg, tok, model, step) = crate::train::samples::load_model(run, None)?;
    let mix = cfg.mixture()?;
    let source = DataSource {
        opts: GenOptions { mr_levels: cfg.data.mr_levels.clone() },
        user: UserData::load(&cfg.data.files)?,
    };
    let mut ev = Evaluator::new(&cfg, &mix, &source, &tok)?;
    let per_step = seconds_per_step(run)?;
    let steps = cfg.train.max_steps.saturating_sub(cfg.train.schedule_start);
    let evals = steps.checked_div(cfg.eval.every).unwrap_or(0);
    let sizes: &[usize] = if quick { &[GENERATE_BATCH] } else { &[32, 64, 128, 256] };
    // One untimed evaluation first: the first one in a process also pays for the allocator's
    // and the thread pool's warm-up.
    ev.run(&model, &tok, &|| false)?;
    let mut rows = Vec::new();
    for &b in sizes {
        ev.generate_batch = b;
        let t0 = Instant::now();
        let results = ev.run(&model, &tok, &|| false)?.unwrap_or_default();
        let secs = t0.elapsed().as_secs_f64();
        let generations: u64 = results.iter().filter(|r| r.scores.is_some()).map(|r| r.n).sum();
        let detail = format!(
            "{} sets, {generations} generations, checkpoint {step}, batch {b}{}",
            results.len(),
            if b == GENERATE_BATCH { " (the default)" } else { "" }
        );
        rows.push(Row::new("eval", "eval", detail, secs, "s", "-", true).with("batch", b as u64));
        if let Some(ps) = per_step {
            let share = evals as f64 * secs / (steps as f64 * ps + evals as f64 * secs);
            rows.push(
                Row::new(
                    "eval",
                    "eval share",
                    format!("{evals} evals in {steps} steps at {:.3} s/step (the run's median), batch {b}", ps),
                    100.0 * share,
                    "% of wall",
                    "≤ 25",
                    share <= 0.25,
                )
                .with("batch", b as u64),
            );
        }
    }
    Ok(rows)
}
