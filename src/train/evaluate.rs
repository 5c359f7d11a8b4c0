//! Evaluation on the held-out sets of every (task, language) of a run: response-token loss for
//! all, and greedy generations scored by the task metric for the first `eval.generate_n`.

use anyhow::Result;

use super::batch::make_batch;
use super::model::Model;
use crate::analysis::stats::mean_ci;
use crate::config::{eval_langs, group_of, RunConfig};
use crate::data::jsonl::DataSource;
use crate::data::mixture::Mixture;
use crate::data::tokenizer::{Encoded, Tok};
use crate::data::{Example, Task};
use crate::runs::samples::{Answer, AnswerSet};

/// Examples per forward pass of the loss evaluation.
const EVAL_BATCH: usize = 32;
/// Prompts decoded together (`mixscope bench eval` measures the choice).
pub const GENERATE_BATCH: usize = 128;

struct EvalSet {
    task: Task,
    lang: String,
    group: String,
    examples: Vec<Example>,
    encoded: Vec<Encoded>,
    generate_n: usize,
}

/// One (task, language) result.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalResult {
    pub task: String,
    pub lang: String,
    pub group: String,
    /// Mean response-token loss.
    pub loss: f64,
    pub metric: String,
    pub value: f64,
    /// Examples scored by the metric (or by loss alone).
    pub n: u64,
    pub lang_ok: Option<f64>,
    /// The metric of each generated example (none for loss-only sets).
    pub scores: Option<Vec<f64>>,
    /// The 95 % interval of `value` (Wilson for pass/fail scores, bootstrap for graded ones).
    pub ci: Option<[f64; 2]>,
    /// Each generated example as answered (prompt, reference, generation, score), in order:
    /// what `runs::samples` stores.
    pub answers: Option<Vec<Answer>>,
}

/// The prepared held-out sets of a run.
pub struct Evaluator {
    sets: Vec<EvalSet>,
    max_new: usize,
    /// The weight of each (task, language) in the run's mixture: what the selection loss
    /// averages with.
    weights: Vec<((String, String), f64)>,
    /// Prompts decoded together.
    pub generate_batch: usize,
}

impl Evaluator {
    pub fn new(cfg: &RunConfig, mix: &Mixture, source: &DataSource, tok: &Tok) -> Result<Evaluator> {
        let tasks: Vec<Task> = if cfg.eval.tasks.is_empty() {
            mix.tasks.iter().map(|(t, _)| t.clone()).collect()
        } else {
            cfg.eval.tasks.iter().map(|t| Task::parse(t)).collect()
        };
        let mut sets = Vec::new();
        for task in &tasks {
            for lang in eval_langs(cfg, mix) {
                let examples = source.heldout(task, &lang, cfg.eval.n)?;
                if examples.is_empty() {
                    continue;
                }
                let encoded = examples.iter().map(|e| tok.encode(e, cfg.data.seq_len)).collect::<Result<Vec<_>>>()?;
                let generate_n = if task.metric() == "loss" { 0 } else { cfg.eval.generate_n.min(examples.len()) };
                sets.push(EvalSet {
                    task: task.clone(),
                    lang: lang.clone(),
                    group: group_of(&lang, cfg, mix).as_str().to_string(),
                    examples,
                    encoded,
                    generate_n,
                });
            }
        }
        let weights = mix.components().into_iter().map(|c| ((c.task.to_string(), c.lang), c.weight)).collect();
        Ok(Evaluator { sets, max_new: cfg.eval.max_new_tokens, weights, generate_batch: GENERATE_BATCH })
    }

    /// The held-out loss that picks the best checkpoint ([`selection_loss`] under this run's
    /// mixture).
    pub fn selection_loss(&self, results: &[EvalResult]) -> Option<f64> {
        selection_loss(results, &self.weights)
    }

    pub fn is_empty(&self) -> bool {
        self.sets.is_empty()
    }

    /// Evaluates every set. `interrupted` is asked between sets and generation batches; when it
    /// says yes the evaluation is abandoned (`None`), so that stop and pause never wait for it.
    pub fn run(&self, model: &Model, tok: &Tok, interrupted: &dyn Fn() -> bool) -> Result<Option<Vec<EvalResult>>> {
        let mut losses = Vec::with_capacity(self.sets.len());
        for set in &self.sets {
            if interrupted() {
                return Ok(None);
            }
            losses.push(set_loss(model, tok, &set.encoded)?);
        }
        let Some(gens) = generate(model, tok, &self.sets, self.max_new, self.generate_batch, interrupted)? else {
            return Ok(None);
        };
        let mut out = Vec::with_capacity(self.sets.len());
        for ((set, loss), gens) in self.sets.iter().zip(losses).zip(gens) {
            let (metric, value, n, lang_ok, scores, ci, answers) = if set.generate_n > 0 {
                let mut scores = Vec::with_capacity(gens.len());
                let mut answers = Vec::with_capacity(gens.len());
                let mut ok = 0usize;
                let mut metric = set.task.metric();
                for (ex, g) in set.examples.iter().zip(gens) {
                    let sc = crate::eval::score(ex, &g);
                    scores.push(sc.value);
                    ok += sc.lang_ok as usize;
                    metric = sc.metric;
                    answers.push(Answer {
                        prompt: ex.prompt.clone(),
                        reference: ex.response.clone(),
                        generation: g,
                        score: sc.value,
                        lang_ok: sc.lang_ok,
                    });
                }
                let n = scores.len();
                let mean = scores.iter().sum::<f64>() / n as f64;
                let ci = mean_ci(&scores, ci_seed(&set.task, &set.lang)).map(|(e, _)| [e.lo, e.hi]);
                (metric.to_string(), mean, n as u64, Some(ok as f64 / n as f64), Some(scores), ci, Some(answers))
            } else {
                ("loss".to_string(), loss, set.encoded.len() as u64, None, None, None, None)
            };
            out.push(EvalResult {
                task: set.task.to_string(),
                lang: set.lang.clone(),
                group: set.group.clone(),
                loss,
                metric,
                value,
                n,
                lang_ok,
                scores,
                ci,
                answers,
            });
        }
        Ok(Some(out))
    }
}

/// The answers of an evaluation's results, as `runs::samples` stores them (the sets that
/// generated).
pub fn answer_sets(results: &[EvalResult]) -> Vec<AnswerSet> {
    results
        .iter()
        .filter_map(|r| {
            Some(AnswerSet {
                task: r.task.clone(),
                lang: r.lang.clone(),
                group: r.group.clone(),
                metric: r.metric.clone(),
                answers: r.answers.clone()?,
            })
        })
        .collect()
}

/// The bootstrap's seed for a (task, language) set: fixed, so an eval's interval is
/// reproducible from its scores.
fn ci_seed(task: &Task, lang: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = crate::data::suite::Fnv::default();
    task.as_str().hash(&mut h);
    lang.hash(&mut h);
    h.finish()
}

/// Mean response-token loss over encoded examples (token-weighted).
fn set_loss(model: &Model, tok: &Tok, encs: &[Encoded]) -> Result<f64> {
    let mut order: Vec<usize> = (0..encs.len()).collect();
    order.sort_by_key(|&i| encs[i].ids.len());
    let (mut sum, mut weight) = (0.0f64, 0.0f64);
    for chunk in order.chunks(EVAL_BATCH) {
        let refs: Vec<&Encoded> = chunk.iter().map(|&i| &encs[i]).collect();
        let b = make_batch(&refs, tok.pad, model.device())?;
        sum += model.eval_loss(&b.ids, &b.targets, &b.weights)? * b.weight_sum;
        weight += b.weight_sum;
    }
    Ok(if weight > 0.0 { sum / weight } else { f64::NAN })
}

/// Greedy generations for the first `generate_n` examples of every set, decoded: one list per
/// set, in example order. Prompts of all sets are decoded together, in batches of
/// `GENERATE_BATCH` of one task and like prompt length (a decoding step costs about the same
/// for 16 rows as for 64, so batching across languages is what makes it cheap).
fn generate(
    model: &Model,
    tok: &Tok,
    sets: &[EvalSet],
    max_new: usize,
    batch: usize,
    interrupted: &dyn Fn() -> bool,
) -> Result<Option<Vec<Vec<String>>>> {
    let mut jobs: Vec<(usize, usize)> =
        sets.iter().enumerate().flat_map(|(s, set)| (0..set.generate_n).map(move |i| (s, i))).collect();
    jobs.sort_by_cached_key(|&(s, i)| (sets[s].task.to_string(), sets[s].encoded[i].prompt_len, s, i));
    let mut out: Vec<Vec<String>> = sets.iter().map(|set| vec![String::new(); set.generate_n]).collect();
    for chunk in jobs.chunks(batch.max(1)) {
        if interrupted() {
            return Ok(None);
        }
        let prompts: Vec<Vec<u32>> = chunk
            .iter()
            .map(|&(s, i)| {
                let e = &sets[s].encoded[i];
                e.ids[..e.prompt_len].to_vec()
            })
            .collect();
        let gens = model.generate(&prompts, max_new, &tok.stops)?;
        for (&(s, i), g) in chunk.iter().zip(gens) {
            out[s][i] = tok.decode(&g)?;
        }
    }
    Ok(Some(out))
}

/// The loss that picks the best checkpoint, as the paper selects: the held-out loss of the
/// run's own training distribution, i.e. the mean of the (task, language) losses weighted as
/// in the mixture (`weights`). Sets of languages or tasks without weight (an English-only
/// run's seen and unseen languages) are evaluated and shown, but do not pick its checkpoint.
/// When no evaluated set has weight (user data evaluated on other tasks), the plain mean.
pub fn selection_loss(results: &[EvalResult], weights: &[((String, String), f64)]) -> Option<f64> {
    let weight =
        |r: &EvalResult| weights.iter().find(|((t, l), _)| *t == r.task && *l == r.lang).map_or(0.0, |(_, w)| *w);
    let finite: Vec<&EvalResult> = results.iter().filter(|r| r.loss.is_finite()).collect();
    let total: f64 = finite.iter().map(|r| weight(r)).sum();
    if total > 0.0 {
        return Some(finite.iter().map(|r| weight(r) * r.loss).sum::<f64>() / total);
    }
    (!finite.is_empty()).then(|| finite.iter().map(|r| r.loss).sum::<f64>() / finite.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::jsonl::UserData;
    use crate::data::suite::GenOptions;
    use crate::data::tokenizer::train_suite_tokenizer;
    use crate::train::ModelConfig;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    #[test]
    fn generations_batched_across_sets_land_on_their_own_examples() {
        let tok = Tok::from_json(&train_suite_tokenizer(400, 20).unwrap()).unwrap();
        let source = DataSource { opts: GenOptions::default(), user: UserData::default() };
        let cfg = ModelConfig::llama(tok.vocab_size(), 32, 48, 1, 2, 2, 512, false);
        let model = Model::new(&cfg, &VarMap::new(), &Device::Cpu, DType::F32, 3).unwrap();
        let mut sets = Vec::new();
        for (task, lang) in [(Task::Mr, "en"), (Task::Sm, "ja"), (Task::Mr, "es"), (Task::If, "fr")] {
            let examples = source.heldout(&task, lang, 5).unwrap();
            let encoded = examples.iter().map(|e| tok.encode(e, 256)).collect::<Result<Vec<_>>>().unwrap();
            let generate_n = 3 + sets.len() % 2;
            sets.push(EvalSet { task, lang: lang.into(), group: "seen".into(), examples, encoded, generate_n });
        }
        let all = generate(&model, &tok, &sets, 6, 5, &|| false).unwrap().unwrap();
        let mut distinct = std::collections::BTreeSet::new();
        for (set, gens) in sets.iter().zip(&all) {
            assert_eq!(gens.len(), set.generate_n);
            for (e, g) in set.encoded.iter().zip(gens) {
                let alone = model.generate(&[e.ids[..e.prompt_len].to_vec()], 6, &tok.stops).unwrap();
                assert_eq!(g, &tok.decode(&alone[0]).unwrap(), "{} {}", set.task, set.lang);
                distinct.insert(g.clone());
            }
        }
        assert!(distinct.len() > 3, "the prompts' generations differ, so a mix-up would show: {distinct:?}");
        assert!(generate(&model, &tok, &sets, 6, 5, &|| true).unwrap().is_none(), "an interruption abandons it");
    }

    fn result(task: &str, lang: &str, group: &str, loss: f64) -> EvalResult {
        EvalResult {
            task: task.into(),
            lang: lang.into(),
            group: group.into(),
            loss,
            metric: "accuracy".into(),
            value: 0.5,
            n: 64,
            lang_ok: None,
            scores: None,
            ci: None,
            answers: None,
        }
    }

    #[test]
    fn selection_loss_is_the_training_distributions() {
        use crate::data::mixture::{Mixture, SpecContext};
        // An English-only run evaluated on seen and unseen languages too: their (high) losses
        // must not pick its checkpoint.
        let ctx = SpecContext { tasks: vec![(Task::Mr, 3.0), (Task::Sm, 1.0)], ..SpecContext::default() };
        let weights = |spec: &str| -> Vec<((String, String), f64)> {
            let m = Mixture::parse(spec, &ctx).unwrap();
            m.components().into_iter().map(|c| ((c.task.to_string(), c.lang), c.weight)).collect()
        };
        let results = vec![
            result("mr", "en", "anchor", 1.0),
            result("sm", "en", "anchor", 2.0),
            result("mr", "es", "seen", 5.0),
            result("sm", "ja", "seen", 6.0),
            result("mr", "ko", "unseen", 7.0),
        ];
        let en_only = selection_loss(&results, &weights("multilingual=0")).unwrap();
        assert!((en_only - (0.75 * 1.0 + 0.25 * 2.0)).abs() < 1e-12, "{en_only}");
        // The same losses, the English-only run's seen languages much worse: no change.
        let mut worse = results.clone();
        worse[2].loss = 50.0;
        worse[4].loss = f64::NAN;
        assert_eq!(selection_loss(&worse, &weights("multilingual=0")), Some(en_only));
        // A multilingual run weighs each language as its mixture does (en 0.5, es 0.5 here),
        // and a set it did not evaluate (es sm) drops out of the normalisation.
        let mixed = selection_loss(&results, &weights("en=1,es=1")).unwrap();
        let want = (0.375 * 1.0 + 0.125 * 2.0 + 0.375 * 5.0) / 0.875;
        assert!((mixed - want).abs() < 1e-12, "{mixed} vs {want}");
        // Nothing evaluated has weight: the plain mean.
        assert_eq!(selection_loss(&results[..1], &weights("es=1")), Some(1.0));
    }
}
