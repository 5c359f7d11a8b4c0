//! The seeded, resumable sampler: which example a run trains on next.
//!
//! Its whole state is a small JSON object (saved in every checkpoint's `state.json`). Restoring
//! it and drawing again continues the same sequence, bit for bit. A fork that changes the
//! mixture keeps the state (seed, RNG position, per-stream positions, counts) so that only
//! future draws change.

use std::collections::BTreeMap;

use anyhow::Result;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::example::{Example, Task};
use super::mixture::{Component, Mixture};

/// Where examples come from: example `index` of the train stream of (task, lang) under a seed.
pub trait Source {
    fn train(&self, task: &Task, lang: &str, seed: u64, index: u64) -> Result<Example>;
}

/// The sampler's complete state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SamplerState {
    /// The run's data seed.
    pub seed: u64,
    /// Examples drawn so far.
    pub draws: u64,
    /// Position of the component-choice RNG (ChaCha8 word position).
    pub rng_pos: u128,
    /// Next index of each (task/lang) stream.
    pub next: BTreeMap<String, u64>,
    /// For a fixed pool: the epoch and position inside it, and the pool's SPEC.
    pub epoch: u64,
    pub pos: u64,
    pub pool_spec: String,
    /// Cumulative examples drawn, per language and per task (the `examples` of train events).
    pub by_lang: BTreeMap<String, u64>,
    pub by_task: BTreeMap<String, u64>,
}

impl SamplerState {
    pub fn new(seed: u64) -> Self {
        SamplerState {
            seed,
            draws: 0,
            rng_pos: 0,
            next: BTreeMap::new(),
            epoch: 0,
            pos: 0,
            pool_spec: String::new(),
            by_lang: BTreeMap::new(),
            by_task: BTreeMap::new(),
        }
    }
}

/// Draws examples from a mixture.
pub struct Sampler {
    comps: Vec<Component>,
    cumulative: Vec<f64>,
    spec: String,
    pooled: bool,
    pool: Vec<(u32, u64)>,
    pool_epoch: Option<u64>,
    state: SamplerState,
}

fn stream_key(c: &Component) -> String {
    format!("{}/{}", c.task, c.lang)
}

impl Sampler {
    pub fn new(mixture: &Mixture, seed: u64) -> Sampler {
        Sampler::resume(mixture, SamplerState::new(seed))
    }

    /// Continue from a saved state, possibly under a new mixture (a fork).
    pub fn resume(mixture: &Mixture, mut state: SamplerState) -> Sampler {
        let comps: Vec<Component> = mixture.components().into_iter().filter(|c| c.weight > 0.0).collect();
        let mut acc = 0.0;
        let cumulative = comps
            .iter()
            .map(|c| {
                acc += c.weight;
                acc
            })
            .collect();
        let pooled = mixture.counts.is_some();
        if pooled && state.pool_spec != mixture.spec {
            state.epoch = 0;
            state.pos = 0;
            state.pool_spec = mixture.spec.clone();
        }
        Sampler { comps, cumulative, spec: mixture.spec.clone(), pooled, pool: Vec::new(), pool_epoch: None, state }
    }

    pub fn state(&self) -> &SamplerState {
        &self.state
    }

    /// The mixture SPEC this sampler draws from.
    pub fn spec(&self) -> &str {
        &self.spec
    }

    /// Examples in one epoch of a fixed pool (None for an endless stream).
    pub fn pool_size(&self) -> Option<u64> {
        self.pooled.then(|| self.comps.iter().map(|c| c.count.unwrap_or(0)).sum())
    }

    fn build_pool(&mut self) {
        if self.pool_epoch == Some(self.state.epoch) {
            return;
        }
        let mut pool = Vec::new();
        for (i, c) in self.comps.iter().enumerate() {
            for k in 0..c.count.unwrap_or(0) {
                pool.push((i as u32, k));
            }
        }
        let mut rng = ChaCha8Rng::seed_from_u64(
            self.state.seed ^ self.state.epoch.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x706f_6f6c,
        );
        pool.shuffle(&mut rng);
        self.pool = pool;
        self.pool_epoch = Some(self.state.epoch);
    }

    /// Which component and stream index the next draw takes (advancing the state).
    fn choose(&mut self) -> Option<(usize, u64)> {
        if self.comps.is_empty() {
            return None;
        }
        if self.pooled {
            self.build_pool();
            if self.pool.is_empty() {
                return None;
            }
            let (ci, k) = self.pool[self.state.pos as usize];
            self.state.pos += 1;
            if self.state.pos as usize >= self.pool.len() {
                self.state.pos = 0;
                self.state.epoch += 1;
            }
            return Some((ci as usize, k));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(self.state.seed ^ 0x006d_6978);
        rng.set_word_pos(self.state.rng_pos);
        let u: f64 = rng.random::<f64>() * self.cumulative.last().copied().unwrap_or(1.0);
        self.state.rng_pos = rng.get_word_pos();
        let ci = self.cumulative.iter().position(|&c| u < c).unwrap_or(self.comps.len() - 1);
        let key = stream_key(&self.comps[ci]);
        let next = self.state.next.entry(key).or_insert(0);
        let k = *next;
        *next += 1;
        Some((ci, k))
    }

    /// Draw the next example.
    pub fn next_example(&mut self, src: &dyn Source) -> Result<Example> {
        let Some((ci, k)) = self.choose() else {
            anyhow::bail!("the mixture '{}' has no examples to draw", self.spec);
        };
        let c = &self.comps[ci];
        let ex = src.train(&c.task, &c.lang, self.state.seed, k)?;
        self.state.draws += 1;
        *self.state.by_lang.entry(c.lang.clone()).or_insert(0) += 1;
        *self.state.by_task.entry(c.task.to_string()).or_insert(0) += 1;
        Ok(ex)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::mixture::SpecContext;

    /// A source that names the example it was asked for.
    struct Names;
    impl Source for Names {
        fn train(&self, task: &Task, lang: &str, seed: u64, index: u64) -> Result<Example> {
            Ok(Example {
                task: task.clone(),
                lang: lang.into(),
                prompt: format!("{seed}"),
                response: format!("{index}"),
                meta: Default::default(),
            })
        }
    }

    fn mix(s: &str) -> Mixture {
        Mixture::parse(s, &SpecContext::default()).unwrap()
    }

    fn draw(s: &mut Sampler, n: usize) -> Vec<Example> {
        (0..n).map(|_| s.next_example(&Names).unwrap()).collect()
    }

    #[test]
    fn restoring_the_state_continues_the_same_sequence() {
        for spec in ["en=0.6,es=0.4", "en=20,n=7"] {
            let m = mix(spec);
            let mut a = Sampler::new(&m, 3);
            let all = draw(&mut a, 300);
            let mut b = Sampler::new(&m, 3);
            let first = draw(&mut b, 120);
            let json = serde_json::to_string(b.state()).unwrap();
            let mut c = Sampler::resume(&m, serde_json::from_str(&json).unwrap());
            let rest = draw(&mut c, 180);
            assert_eq!([first, rest].concat(), all, "{spec}");
        }
    }

    #[test]
    fn a_new_mixture_changes_only_future_draws() {
        let m = mix("en=0.5,es=0.5");
        let mut a = Sampler::new(&m, 1);
        draw(&mut a, 50);
        let st = a.state().clone();
        let mut b = Sampler::resume(&mix("en=0.5,ko=0.5"), st.clone());
        let next = draw(&mut b, 200);
        assert!(next.iter().any(|e| e.lang == "ko"));
        assert!(!next.iter().any(|e| e.lang == "es"));
        // English continues its own stream where it left off.
        let en_next = st.next.get("mr/en").copied().unwrap_or(0);
        let first_en_mr = next.iter().find(|e| e.lang == "en" && e.task == Task::Mr).unwrap();
        assert_eq!(first_en_mr.response, en_next.to_string());
        assert_eq!(b.state().draws, 250);
    }

    #[test]
    fn pools_repeat_each_example_once_per_epoch() {
        let m = mix("en=10,n=2,tasks=mr");
        let mut s = Sampler::new(&m, 9);
        assert_eq!(s.pool_size(), Some(18));
        let e1 = draw(&mut s, 18);
        let e2 = draw(&mut s, 18);
        let key = |v: &[Example]| {
            let mut k: Vec<(String, String)> = v.iter().map(|e| (e.lang.clone(), e.response.clone())).collect();
            k.sort();
            k
        };
        assert_eq!(key(&e1), key(&e2));
        assert_ne!(e1, e2, "each epoch is shuffled anew");
        assert_eq!(s.state().by_lang["en"], 20);
    }
}
