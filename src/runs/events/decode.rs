//! Decoding the lines a [`Follower`] reads into what a reader folds: one [`Decoder`] for every
//! reader of `events.jsonl`.
//!
//! Both decoders parse with serde into one borrowed struct (`RawEvent`, the schema's statement
//! with [`Event`]). The strict decoder hands every line over as an [`Event`]. The fast one hands
//! train and eval lines over as borrowed points, without allocating: the train lines of
//! mixscope's writer (nine in ten of a run's lines) matched literally by `fast.rs` (private
//! here), any other train or eval line through serde; every other line as an [`Event`]. Both agree line by line (the fuzz and
//! proptest targets in tests/it/fuzz.rs and fuzz/), and a test fails when a field added to the
//! schema falls off the fast path.

use super::fast::{self, Scratch};
use super::follow::Follower;
use super::{BadLine, Body, Event, Examples, RawEvent};

/// A language's name of at most eight bytes as a number that orders as the name does (its
/// bytes big-endian, zero-padded): the fast decoder hands example counts over by tag, so that
/// a reader that keeps one column per language merges a line's counts by integer compares.
pub type LangTag = u64;

/// The tag of the first eight bytes of `name`, and whether the name is longer.
pub fn lang_tag(name: &str) -> (LangTag, bool) {
    let b = name.as_bytes();
    let head = &b[..b.len().min(8)];
    let mut w = [0u8; 8];
    w[..head.len()].copy_from_slice(head);
    (fast::tag(u64::from_le_bytes(w), head.len()), b.len() > 8)
}

/// The name a tag holds.
pub fn lang_name(tag: LangTag) -> String {
    fast::tag_name(tag)
}

/// A train event as the fast decoder hands it over. `langs` are the cumulative examples per
/// language, sorted by tag, without repeats; the per-task counts and `grad_norm` are checked but
/// not handed over (a reader that wants them decodes strictly).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainPoint<'a> {
    pub step: u64,
    pub time: f64,
    pub loss: f64,
    pub lr: f64,
    pub tokens: u64,
    pub tokens_per_s: f64,
    pub langs: &'a [(LangTag, u64)],
}

/// An eval event as the fast decoder hands it over, borrowed from its line: `scores` is checked
/// but not handed over. A missing loss or value is NaN and a missing `n` is 0, as in
/// [`super::Body::Eval`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EvalPoint<'a> {
    pub step: u64,
    pub time: f64,
    pub task: &'a str,
    pub lang: &'a str,
    pub group: &'a str,
    pub loss: f64,
    pub metric: &'a str,
    pub value: f64,
    pub n: u64,
    pub lang_ok: Option<f64>,
    pub ci: Option<[f64; 2]>,
}

impl TrainPoint<'_> {
    /// As an event (without the per-task counts and `grad_norm`, which points do not carry).
    pub fn to_event(&self) -> Event {
        let lang = self.langs.iter().map(|&(tag, n)| (lang_name(tag), n)).collect();
        let examples = Examples { lang, task: Default::default() };
        let (loss, lr, tokens, tokens_per_s) = (self.loss, self.lr, self.tokens, self.tokens_per_s);
        let body = Body::Train { loss, lr, tokens, tokens_per_s, examples, grad_norm: None };
        Event { v: super::VERSION, step: self.step, time: self.time, body }
    }
}

impl EvalPoint<'_> {
    /// As an event (without `scores`, which points do not carry).
    pub fn to_event(&self) -> Event {
        let body = Body::Eval {
            task: self.task.to_string(),
            lang: self.lang.to_string(),
            group: self.group.to_string(),
            loss: self.loss,
            metric: self.metric.to_string(),
            value: self.value,
            n: self.n,
            lang_ok: self.lang_ok,
            scores: None,
            ci: self.ci,
        };
        Event { v: super::VERSION, step: self.step, time: self.time, body }
    }
}

/// One line, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded<'a> {
    Train(TrainPoint<'a>),
    Eval(EvalPoint<'a>),
    /// Any event the fast path did not take (every event, when decoding strictly), of any
    /// kind: a train event with a language name longer than eight bytes comes this way.
    Event(Event),
    /// A line that does not parse (skipped; the reader may count or report it).
    Bad(BadLine),
}

/// Decodes the lines of one events file, as a [`Follower`] reads them, in file order.
#[derive(Debug, Clone, Default)]
pub struct Decoder {
    strict: bool,
    /// Lines decoded so far (for [`BadLine::line`]).
    line: u64,
    scratch: Scratch,
}

impl Decoder {
    /// The fast decoder: train and eval lines as points, the rest as events.
    pub fn fast() -> Decoder {
        Decoder::default()
    }

    /// Every line strictly, as an [`Event`] (with every field, e.g. eval `scores`).
    pub fn strict() -> Decoder {
        Decoder { strict: true, ..Decoder::default() }
    }

    /// Decode every complete line appended since the last read, in order, into `sink`.
    /// Returns true when the file shrank or was replaced: what was decoded before is void, and
    /// the caller starts over (and reads again).
    pub fn read(&mut self, follower: &mut Follower, mut sink: impl FnMut(Decoded<'_>)) -> bool {
        let reset = follower.read(|rest| self.next(rest, &mut sink));
        if reset {
            self.line = 0;
        }
        reset
    }

    /// Decode the line at the start of `rest` (the unread part of a chunk); its length without
    /// the newline, or `None` when `rest` holds no whole line.
    #[inline]
    fn next(&mut self, rest: &[u8], sink: &mut impl FnMut(Decoded<'_>)) -> Option<usize> {
        // The writer's train layout is recognised in place, up to its newline: no search for
        // the end. Every other line goes to serde.
        if !self.strict {
            if let Some((n, t)) = fast::train_line(&mut self.scratch, rest) {
                self.line += 1;
                sink(Decoded::Train(self.train_point(t)));
                return Some(n);
            }
        }
        let n = memchr::memchr(b'\n', rest)?;
        let line = &rest[..n];
        self.line += 1;
        if line.iter().all(|b| b.is_ascii_whitespace()) {
            return Some(n);
        }
        let line_no = self.line;
        let bad = |reason| Decoded::Bad(BadLine { line: line_no, reason });
        let Ok(text) = std::str::from_utf8(line) else {
            sink(bad("invalid UTF-8".into()));
            return Some(n);
        };
        let raw = match RawEvent::parse(text) {
            Ok(raw) => raw,
            Err(reason) => {
                sink(bad(reason));
                return Some(n);
            }
        };
        // Borrowed where it can be: an eval line's strings are the line's, a train line's
        // counts go by tag. Anything else (or all, when strict) as an event.
        match raw.kind() {
            "eval" if !self.strict => sink(raw.eval().map_or_else(bad, Decoded::Eval)),
            "train" if !self.strict && self.tag_counts(&raw) => match raw.train() {
                Ok(t) => sink(Decoded::Train(self.train_point(t))),
                Err(reason) => sink(bad(reason)),
            },
            _ => sink(raw.into_event().map_or_else(bad, Decoded::Event)),
        }
        Some(n)
    }

    /// A train line's counts by tag into the scratch; false when a name is longer than eight
    /// bytes (the line is then handed over as an event).
    fn tag_counts(&mut self, raw: &RawEvent<'_>) -> bool {
        let counts = &mut self.scratch.counts;
        counts.clear();
        for (name, &n) in raw.examples.iter().flat_map(|e| &e.lang) {
            match lang_tag(name) {
                (tag, false) => counts.push((tag, n)),
                (_, true) => return false,
            }
        }
        true
    }

    /// A train point with the counts of its line (in the scratch).
    fn train_point(&self, t: TrainPoint<'static>) -> TrainPoint<'_> {
        TrainPoint { langs: &self.scratch.counts, ..t }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn train() -> Event {
        let mut examples = Examples::default();
        examples.lang.insert("en".into(), 3);
        examples.lang.insert("zh".into(), 1);
        examples.task.insert("mr".into(), 4);
        let body = Body::Train { loss: 1.25, lr: 1e-3, tokens: 640, tokens_per_s: 1e3, examples, grad_norm: Some(0.5) };
        // A time of few digits: the scanner reads a 17-digit one within an ulp of serde.
        Event { time: 1_800_000_000.25, ..Event::new(7, body) }
    }

    fn eval() -> Event {
        Event { time: 1_800_000_000.5, ..super::super::samples::mr_es_eval(7, Some(vec![0.0, 1.0])) }
    }

    /// Decode `text` (whole lines) as a follower would hand it over.
    fn decode(d: &mut Decoder, text: &str) -> Vec<Event> {
        let mut out = Vec::new();
        let mut rest = text.as_bytes();
        while let Some(n) = d.next(rest, &mut |x| {
            out.push(match x {
                Decoded::Train(t) => t.to_event(),
                Decoded::Eval(e) => e.to_event(),
                Decoded::Event(e) => e,
                Decoded::Bad(b) => panic!("bad line {}: {}", b.line, b.reason),
            })
        }) {
            rest = &rest[n + 1..];
        }
        out
    }

    /// The schema is stated once, in `runs::events` (`Body`): every field of a train and an
    /// eval event, as the writer writes them, is read by the fast paths. A field added to
    /// `Body::Train` changes the writer's line, and this test fails until `fast.rs` learns it
    /// (instead of every line silently taking a slower path).
    #[test]
    fn every_field_of_the_schema_stays_on_the_fast_path() {
        let line = train().to_line();
        let mut s = Scratch::default();
        let taken = fast::train_line(&mut s, line.as_bytes()).map(|(n, _)| n);
        assert_eq!(
            taken,
            Some(line.len() - 1),
            "a train line falls off the fast path; teach runs/events/fast.rs:\n{line}"
        );
        // What a new field does to the exact-layout path (so the assertion above can fail).
        let with_new = line.replace("\"grad_norm\"", "\"new_field\":1,\"grad_norm\"");
        assert!(fast::train_line(&mut s, with_new.as_bytes()).is_none());
        // Eval lines (one in ten) go through serde, borrowed: a point, not an event.
        let line = eval().to_line();
        let mut kinds = Vec::new();
        Decoder::fast().next(line.as_bytes(), &mut |d| kinds.push(matches!(d, Decoded::Eval(_))));
        assert_eq!(kinds, [true], "{line}");
    }

    /// The fast decoder hands over what the strict one reads, but for what points leave out
    /// (per-task counts, grad_norm, scores); a line with a field it does not know is still
    /// decoded, by the scanner.
    #[test]
    fn fast_points_are_the_strict_events() {
        let strip = |mut e: Event| {
            match &mut e.body {
                Body::Train { examples, grad_norm, .. } => (examples.task.clear(), *grad_norm = None).0,
                Body::Eval { scores, .. } => *scores = None,
                _ => {}
            }
            e
        };
        let status = Event::new(8, Body::Status { state: super::super::State::Finished, message: None });
        let with_new = train().to_line().replace("\"grad_norm\"", "\"new_field\":[1,{}],\"grad_norm\"");
        let text = [train().to_line(), eval().to_line(), with_new, status.to_line()].concat();
        let strict = decode(&mut Decoder::strict(), &text);
        assert_eq!(strict.len(), 4);
        let fast = decode(&mut Decoder::fast(), &text);
        assert_eq!(fast, strict.into_iter().map(strip).collect::<Vec<_>>());
        // Language names: up to eight bytes by tag, longer ones as strict events.
        for name in ["en", "zh-Hant", "abcdefgh", "x-longer-name", "é"] {
            let (tag, longer) = lang_tag(name);
            assert_eq!(longer, name.len() > 8);
            if !longer {
                assert_eq!(lang_name(tag), name);
            }
            let line = train().to_line().replace("\"zh\"", &format!("\"{name}\""));
            let got = decode(&mut Decoder::fast(), &line);
            let Body::Train { examples, .. } = &got[0].body else { panic!("{got:?}") };
            assert_eq!(examples.lang.get(name), Some(&1), "{name}");
        }
    }
}
