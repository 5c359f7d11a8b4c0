//! The x axes of a run: per train event its step, time, tokens and examples (per language at
//! its evaluations' steps), and how a step maps to an x on each axis and back.

use crate::runs::events::decode::{lang_name, lang_tag, LangTag};

use super::series::Steps;

/// Which quantity the x axis shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum XAxis {
    Step,
    /// Wall time since the start of the run's lineage.
    Time,
    Tokens,
    /// Examples seen of the curve's own language (the paper's x axis).
    Examples,
}

impl XAxis {
    pub fn next(self) -> XAxis {
        match self {
            XAxis::Step => XAxis::Time,
            XAxis::Time => XAxis::Tokens,
            XAxis::Tokens => XAxis::Examples,
            XAxis::Examples => XAxis::Step,
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            XAxis::Step => "step",
            XAxis::Time => "time (s)",
            XAxis::Tokens => "tokens",
            XAxis::Examples => "examples of the language",
        }
    }
}

/// Per train event: what the x axes need, by step. Values are `f32`, times as offsets from the
/// run's first train event: exact enough for an axis (a tenth of a second after four months, a
/// token in 16 M), at half the memory.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    pub steps: Steps,
    /// The time of the first train event; `time` holds offsets from it.
    t_base: f64,
    pub(super) time: Vec<f32>,
    pub(super) tokens: Vec<f32>,
    pub(super) total_examples: Vec<f32>,
    /// Examples seen per language, at the steps where evaluations were read.
    pub examples: LangColumns,
}

/// Examples seen per language. The last train event's counts are kept (`current`) and, when an
/// evaluation is read, recorded for its step (`marks`): the examples axis places evaluations,
/// so a language's count is needed at their steps only, not at every train step (the loss
/// curve's axis is the total, kept per train event). Columns are sorted by name; train lines
/// name their languages sorted, so a line is merged in one pass. Counts are `f32` (exact to
/// 16.7 M examples of a language, within one example of it far beyond).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LangColumns {
    names: Vec<String>,
    /// Per name: the tag of its first eight bytes and whether it is longer, which order as
    /// the names do (so that a line's names are merged by integer compares).
    tags: Vec<(LangTag, bool)>,
    /// The last train event's count per name, and its step.
    current: Vec<f32>,
    current_step: Option<u64>,
    /// The steps recorded, and per name its count at each.
    marks: Steps,
    cols: Vec<Vec<f32>>,
}

impl LangColumns {
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str)
    }

    pub(super) fn index(&self, lang: &str) -> Option<usize> {
        self.names.binary_search_by(|n| n.as_str().cmp(lang)).ok()
    }

    /// The last train event's count of `lang`.
    pub fn current(&self, lang: &str) -> Option<f32> {
        Some(self.current[self.index(lang)?])
    }

    /// The count of `lang` recorded at the last mark at or before `step`.
    pub fn at(&self, lang: &str, step: u64) -> Option<f32> {
        let i = self.marks.partition_point(|m| m <= step).checked_sub(1)?;
        Some(self.cols[self.index(lang)?][i])
    }

    /// The first marked step whose count of `lang` reaches `x`.
    pub(super) fn step_at(&self, lang: &str, x: f64) -> Option<u64> {
        let col = &self.cols[self.index(lang)?];
        self.marks.get(col.partition_point(|&c| (c as f64) < x))
    }

    /// The position of `lang`, inserted (count zero, and zero at every mark) when new.
    pub(super) fn slot(&mut self, lang: &str) -> usize {
        match self.index(lang) {
            Some(i) => i,
            None => {
                let i = self.names.partition_point(|n| n.as_str() < lang);
                self.insert(i, lang.to_string());
                i
            }
        }
    }

    pub(super) fn insert(&mut self, i: usize, name: String) {
        self.tags.insert(i, lang_tag(&name));
        self.names.insert(i, name);
        self.current.insert(i, 0.0);
        self.cols.insert(i, vec![0.0; self.marks.len()]);
    }

    /// Record the current counts for `step`, when a train event at or before it was read.
    pub(super) fn mark(&mut self, step: u64) {
        if self.current_step.is_none_or(|c| c > step) || self.marks.last().is_some_and(|m| m >= step) {
            return;
        }
        self.marks.push(step);
        for (col, &c) in self.cols.iter_mut().zip(&self.current) {
            col.push(c);
        }
    }

    /// Forget the marks from `step` on (a resumed run redoes them).
    pub(super) fn truncate_from(&mut self, step: u64) {
        let keep = self.marks.partition_point(|m| m < step);
        self.marks.truncate(keep);
        for c in &mut self.cols {
            c.truncate(keep);
        }
    }

    /// Examples seen of every language, by the last train event.
    pub(super) fn total(&self) -> f32 {
        self.current.iter().map(|&c| c as f64).sum::<f64>() as f32
    }

    pub(super) fn heap_bytes(&self) -> usize {
        self.marks.heap_bytes() + self.cols.iter().map(|c| c.capacity() * 4).sum::<usize>()
    }
}

impl Timeline {
    /// Bytes the timeline holds on the heap (its columns' capacities).
    pub fn heap_bytes(&self) -> usize {
        self.steps.heap_bytes()
            + (self.time.capacity() + self.tokens.capacity() + self.total_examples.capacity()) * 4
            + self.examples.heap_bytes()
    }

    pub fn len(&self) -> usize {
        self.steps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The time of train event `i` (seconds since the epoch).
    pub fn time(&self, i: usize) -> f64 {
        self.t_base + self.time[i] as f64
    }

    /// Free what was reserved and not used (after a whole file was read).
    pub fn shrink_to_fit(&mut self) {
        self.time.shrink_to_fit();
        self.tokens.shrink_to_fit();
        self.total_examples.shrink_to_fit();
    }

    pub(super) fn truncate_from(&mut self, step: u64) {
        let keep = self.steps.partition_point(|s| s < step);
        self.steps.truncate(keep);
        self.time.truncate(keep);
        self.tokens.truncate(keep);
        self.total_examples.truncate(keep);
        self.examples.truncate_from(step);
    }

    /// Append a train event's step, time and tokens (a step at or before the last replaces the
    /// tail from there); its examples follow.
    pub(super) fn push(&mut self, step: u64, time: f64, tokens: f64) {
        if self.steps.last().is_some_and(|s| step <= s) {
            self.truncate_from(step);
        }
        if self.steps.is_empty() {
            self.t_base = time;
        }
        self.steps.push(step);
        self.time.push((time - self.t_base) as f32);
        self.tokens.push(tokens as f32);
        self.total_examples.push(self.examples.total());
        self.examples.current_step = Some(step);
    }

    /// [`Timeline::push`] and the event's counts, in one pass: `counts` are sorted by language,
    /// without repeats, each language a name of at most eight bytes held in its tag (see
    /// [`lang_tag`]), compared by tags. Languages the event does not name keep their count.
    pub(super) fn push_counts(&mut self, step: u64, time: f64, tokens: f64, counts: &[(LangTag, u64)]) {
        self.push(step, time, tokens);
        let ex = &mut self.examples;
        if !(ex.tags.len() == counts.len() && ex.tags.iter().zip(counts).all(|(&t, &(tag, _))| t == (tag, false))) {
            // New languages (rare): their slots first.
            for &(tag, _) in counts {
                if !ex.tags.contains(&(tag, false)) {
                    ex.slot(&lang_name(tag));
                }
            }
        }
        let mut c = 0;
        for &(tag, count) in counts {
            while ex.tags[c] != (tag, false) {
                c += 1;
            }
            ex.current[c] = count as f32;
            c += 1;
        }
        self.total_examples[self.steps.len() - 1] = ex.total();
    }

    /// Room for about `n` more train events (a hint from the file's size).
    pub(super) fn reserve(&mut self, n: usize) {
        self.time.reserve(n);
        self.tokens.reserve(n);
        self.total_examples.reserve(n);
    }

    /// The count of `lang` for the last train event (read by name, on the strict path).
    pub(super) fn set_examples(&mut self, lang: &str, count: f64) {
        let Some(n) = self.steps.len().checked_sub(1) else { return };
        let ex = &mut self.examples;
        let i = ex.slot(lang);
        ex.current[i] = count as f32;
        self.total_examples[n] = ex.total();
    }

    pub(super) fn index_at(&self, step: u64) -> Option<usize> {
        self.steps.partition_point(|s| s <= step).checked_sub(1)
    }

    /// The x value of a step, on an axis (`lang` for the examples axis, where the step is an
    /// evaluation's; none = all languages).
    pub fn x_of(&self, step: u64, axis: XAxis, lang: Option<&str>, t0: f64) -> Option<f64> {
        if axis == XAxis::Step {
            return Some(step as f64);
        }
        if let (XAxis::Examples, Some(l)) = (axis, lang) {
            return Some(self.examples.at(l, step).map_or(0.0, f64::from)).filter(|_| self.index_at(step).is_some());
        }
        let i = self.index_at(step)?;
        Some(match axis {
            XAxis::Time => self.time(i) - t0,
            XAxis::Tokens => self.tokens[i] as f64,
            _ => self.total_examples[i] as f64,
        })
    }

    /// The first step whose x value reaches `x` (x is non-decreasing in step).
    pub fn step_at_x(&self, x: f64, axis: XAxis, lang: Option<&str>, t0: f64) -> u64 {
        let after = || self.steps.last().map_or(0, |s| s + 1);
        let i = match (axis, lang) {
            (XAxis::Step, _) => return x.max(0.0).ceil() as u64,
            (XAxis::Examples, Some(l)) => return self.examples.step_at(l, x).unwrap_or_else(after),
            (XAxis::Time, _) => self.time.partition_point(|&t| self.t_base + t as f64 - t0 < x),
            (XAxis::Tokens, _) => self.tokens.partition_point(|&a| (a as f64) < x),
            (XAxis::Examples, None) => self.total_examples.partition_point(|&a| (a as f64) < x),
        };
        self.steps.get(i).unwrap_or_else(after)
    }
}
