//! What the samples view shows, read off the UI thread: the answers the runs stored at each
//! evaluation (`runs::samples`) for one (task, language), for one run or two (A and B). The
//! event loop asks the collector with [`Query`]; the collector answers with a
//! `Delta::Answers` of [`Answers`].

use std::path::PathBuf;

use crate::runs::samples::{self, AnswerSet};

/// One side of the samples view: a run.
#[derive(Debug, Clone, PartialEq)]
pub struct SideQuery {
    /// What the view calls it (a run's name; a group's label).
    pub label: String,
    /// The run's id.
    pub run: String,
    pub dir: PathBuf,
    /// Said under the label: the member of a group that stands for it.
    pub note: Option<String>,
}

/// Which answers to read: (task, language) of one run, or of two (A and B).
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub task: String,
    pub lang: String,
    pub sides: Vec<SideQuery>,
}

/// One side's stored answers for the query's set, at each evaluation it stores.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SideAnswers {
    /// Each stored evaluation's step, with the set's answers (`None`: that evaluation did not
    /// generate this set).
    pub steps: Vec<(u64, Option<AnswerSet>)>,
    /// Why a stored file could not be read (the first such error).
    pub error: Option<String>,
}

impl SideAnswers {
    /// The run stores answers at all (a run written before they were stored has none).
    pub fn stores_any(&self) -> bool {
        !self.steps.is_empty()
    }

    /// The set at `step`, when stored.
    pub fn at(&self, step: u64) -> Option<&AnswerSet> {
        self.steps.iter().find(|(s, _)| *s == step).and_then(|(_, a)| a.as_ref())
    }
}

/// The answer to a [`Query`].
#[derive(Debug, Clone, PartialEq)]
pub struct Answers {
    pub query: Query,
    pub sides: Vec<SideAnswers>,
}

impl Answers {
    /// The steps at which every side stores the set, ascending.
    pub fn common_steps(&self) -> Vec<u64> {
        let Some(first) = self.sides.first() else { return Vec::new() };
        first
            .steps
            .iter()
            .filter(|(_, a)| a.is_some())
            .map(|(s, _)| *s)
            .filter(|s| self.sides.iter().all(|side| side.at(*s).is_some()))
            .collect()
    }
}

/// Read the answers of a query (the collector's thread).
pub fn read(q: &Query) -> Answers {
    let sides = q
        .sides
        .iter()
        .map(|side| {
            let mut out = SideAnswers::default();
            for step in samples::steps(&side.dir) {
                match samples::read_set(&side.dir, step, &q.task, &q.lang) {
                    Ok(Some(set)) => out.steps.push((step, set)),
                    // Pruned between the listing and the read.
                    Ok(None) => {}
                    Err(e) => {
                        out.error.get_or_insert_with(|| format!("{e:#}"));
                    }
                }
            }
            out
        })
        .collect();
    Answers { query: q.clone(), sides }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runs::samples::Answer;
    use crate::runs::RunDir;

    fn set(lang: &str, scores: &[f64]) -> AnswerSet {
        AnswerSet {
            task: "mr".into(),
            lang: lang.into(),
            group: "seen".into(),
            metric: "accuracy".into(),
            answers: scores
                .iter()
                .map(|s| Answer {
                    prompt: "p".into(),
                    reference: "r".into(),
                    generation: "g".into(),
                    score: *s,
                    lang_ok: true,
                })
                .collect(),
        }
    }

    /// Every stored step of each side, the set asked for; the steps both store; a run that
    /// stores nothing; a damaged file named.
    #[test]
    fn a_query_reads_each_sides_stored_steps() {
        let t = tempfile::tempdir().unwrap();
        let (a, b, old) = (t.path().join("a"), t.path().join("b"), t.path().join("old"));
        for d in [&a, &b, &old] {
            std::fs::create_dir_all(d).unwrap();
        }
        samples::write(&RunDir::new(&a), 10, &[set("es", &[1.0]), set("en", &[0.0])]).unwrap();
        samples::write(&RunDir::new(&a), 20, &[set("en", &[1.0])]).unwrap();
        samples::write(&RunDir::new(&b), 20, &[set("es", &[0.0])]).unwrap();
        samples::write(&RunDir::new(&b), 10, &[set("es", &[1.0])]).unwrap();
        let side = |label: &str, dir: &PathBuf| SideQuery {
            label: label.into(),
            run: label.into(),
            dir: dir.clone(),
            note: None,
        };
        let q = Query { task: "mr".into(), lang: "es".into(), sides: vec![side("a", &a), side("b", &b)] };
        let got = read(&q);
        assert_eq!(
            got.sides[0].steps.iter().map(|(s, x)| (*s, x.is_some())).collect::<Vec<_>>(),
            [(10, true), (20, false)]
        );
        assert_eq!(got.sides[1].steps.len(), 2);
        assert_eq!(got.common_steps(), [10]);
        assert_eq!(got.sides[0].at(10).unwrap().answers[0].score, 1.0);
        let q = Query { sides: vec![side("old", &old)], ..q };
        let got = read(&q);
        assert!(!got.sides[0].stores_any() && got.sides[0].error.is_none());
        std::fs::create_dir_all(samples::dir(&old)).unwrap();
        std::fs::write(samples::path(&old, 5), b"garbage").unwrap();
        let got = read(&q);
        assert!(got.sides[0].error.as_deref().is_some_and(|e| e.contains("5.jsonl.zst")), "{got:?}");
    }
}
