//! Reading a run directory: its config (`RunData::open`) and its events file, followed as it
//! grows ([`Source`]: the follower and the decoder), every line folded through
//! [`RunData::apply`]. The collector's; never called on the UI thread.

use std::path::Path;

use crate::runs::events::decode::{Decoded, Decoder};
use crate::runs::events::follow::Follower;
use crate::runs::RunDir;
use crate::tui::store::{Point, RunData};

impl RunData {
    /// Open a run directory: its config; no events yet (a [`Source`] reads them).
    pub fn open(dir: &Path) -> RunData {
        let run = RunDir::new(dir);
        let read = run.read_config().map_err(|e| crate::supervisor::status::damaged_message(&run, &format!("{e:#}")));
        let mut r = RunData::new(dir, run.id(), read);
        r.set_notes(read_notes(dir));
        r
    }

    /// Open a run directory and read its events.
    pub fn load(dir: &Path) -> RunData {
        let mut r = RunData::open(dir);
        Source::new(dir).poll(&mut r);
        r.shrink_to_fit();
        r
    }
}

/// A run's note and tags (`Err`: why its notes file cannot be read).
pub fn read_notes(dir: &Path) -> Result<crate::runs::notes::Notes, String> {
    crate::runs::notes::read(dir).map_err(|e| format!("{e:#}"))
}

/// What tells that a run's notes file changed without opening it: its inode (a writer
/// replaces it whole), size and modification time; `None` while there is none.
pub fn notes_stamp(dir: &Path) -> Option<(u64, u64, i128)> {
    let m = std::fs::symlink_metadata(crate::runs::notes::path(dir)).ok()?;
    let mtime = m.modified().ok()?.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i128);
    #[cfg(unix)]
    let ino = std::os::unix::fs::MetadataExt::ino(&m);
    #[cfg(not(unix))]
    let ino = 0;
    Some((ino, m.len(), mtime))
}

/// A run's checkpoints on disk, with whether each holds weights only (a fork from one starts
/// with fresh optimizer moments).
pub fn checkpoints_on_disk(dir: &Path) -> Vec<(u64, bool)> {
    let run = RunDir::new(dir);
    run.checkpoints().unwrap_or_default().into_iter().map(|s| (s, run.weights_only(s))).collect()
}

/// A run's events file as read so far: where the follower is, and the decoder's state.
#[derive(Debug, Clone)]
pub struct Source {
    follower: Follower,
    decoder: Decoder,
}

impl Source {
    pub fn new(dir: &Path) -> Source {
        Source { follower: Follower::new(dir.join("events.jsonl")), decoder: Decoder::fast() }
    }

    /// Bytes of whole lines read so far.
    pub fn offset(&self) -> u64 {
        self.follower.offset()
    }

    /// What was appended, owned (to cross to the UI thread), and the lines that did not parse;
    /// `None` when the file was truncated or replaced (what was read before is void: read the
    /// run afresh).
    pub fn appended(&mut self) -> Option<(Vec<Point>, usize)> {
        let (mut points, mut bad) = (Vec::new(), 0);
        let reset = self.decoder.read(&mut self.follower, |d| match Point::of(d) {
            Some(p) => points.push(p),
            None => bad += 1,
        });
        (!reset).then_some((points, bad))
    }

    /// Fold what was appended into `r`; returns whether anything changed. When the file was
    /// truncated or replaced, `r` is read again from a fresh start.
    pub fn poll(&mut self, r: &mut RunData) -> bool {
        if self.follower.offset() == 0 && r.loss.is_empty() {
            // A first read of a long file: room for its train events up front (a line is
            // rarely under 200 bytes), rather than growing by doubling as they come.
            let len = std::fs::metadata(self.follower.path()).map_or(0, |m| m.len());
            if len > 1 << 20 {
                let n = (len / 200) as usize;
                r.timeline.reserve(n);
                r.loss.reserve(n);
            }
        }
        let mut changed = false;
        if self.decoder.read(&mut self.follower, |d: Decoded<'_>| {
            changed = true;
            r.apply(d)
        }) {
            *r = RunData::open(&r.dir);
            self.decoder.read(&mut self.follower, |d| r.apply(d));
            changed = true;
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runs::events::follow::READ_CHUNK;
    use crate::runs::events::{Body, Event, State};
    use crate::runs::events::{EventWriter, Examples};
    use crate::tui::store::XAxis;

    use crate::runs::events::samples::mr_es_eval;

    #[test]
    fn fast_and_slow_paths_agree() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("events.jsonl");
        let mut w = EventWriter::open(&p).unwrap();
        let mut examples = Examples::default();
        for step in 1..=5u64 {
            examples.lang.insert("en".into(), step * 3);
            examples.lang.insert("es".into(), step);
            w.write(&Event::new(
                step,
                Body::Train {
                    loss: 5.0 - step as f64,
                    lr: 1e-3,
                    tokens: step * 100,
                    tokens_per_s: 10.0,
                    examples: examples.clone(),
                    grad_norm: Some(1.0),
                },
            ))
            .unwrap();
        }
        w.write(&mr_es_eval(5, None)).unwrap();
        w.write(&Event::new(
            5,
            Body::Checkpoint { path: "checkpoints/5".into(), eval_loss: Some(1.5), best: None, warnings: 0 },
        ))
        .unwrap();
        w.write(&Event::new(5, Body::Status { state: State::Finished, message: None })).unwrap();
        let fast = RunData::load(dir.path());
        // The slow path alone, for comparison.
        let mut slow = RunData::open(dir.path());
        for line in std::fs::read_to_string(&p).unwrap().lines() {
            slow.apply(Decoded::Event(Event::parse(line).unwrap()));
        }
        assert_eq!(fast.loss.steps, slow.loss.steps);
        assert_eq!(fast.loss.ys, slow.loss.ys);
        assert_eq!(fast.timeline.examples, slow.timeline.examples);
        assert_eq!(fast.timeline.tokens, slow.timeline.tokens);
        assert_eq!(fast.evals.len(), 1);
        let c = &fast.evals[&("mr".to_string(), "es".to_string())];
        assert_eq!((c.value.last(), c.group.as_str(), c.n), (Some((5, 0.25)), "seen", 8));
        // The interval, read by the fast path as by serde.
        assert_eq!(c.ci_at(5), Some((0.0625, 0.5)));
        assert_eq!(slow.evals[&("mr".to_string(), "es".to_string())].ci_at(5), Some((0.0625, 0.5)));
        assert_eq!(c.ci_at(4), None);
        assert_eq!(fast.best, Some((1.5, 5)));
        assert_eq!(fast.statuses.last().unwrap().state, State::Finished);
        // A language's examples are kept at evaluations' steps (the examples axis places them).
        assert_eq!(fast.timeline.x_of(5, XAxis::Examples, Some("en"), 0.0), Some(15.0));
        assert_eq!(fast.timeline.step_at_x(9.0, XAxis::Examples, Some("en"), 0.0), 5);
        assert_eq!(fast.timeline.x_of(3, XAxis::Examples, None, 0.0), Some(12.0));
        assert_eq!(fast.bad_lines, 0);
    }

    /// Languages come and go, names long and short, a huge loss, a line without grad_norm, a
    /// resume that rewinds: the exact-layout path, the scanner and the strict parser build the
    /// same timeline.
    #[test]
    fn train_lines_of_every_shape_fold_the_same_way() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("events.jsonl");
        let mut w = EventWriter::open(&p).unwrap();
        let langs: [&[&str]; 6] = [
            &["en", "es"],
            &["en", "es", "zh"],
            &["ar", "en"],
            &["en", "pt-BR", "zh-Hant-TW"],
            &[],
            &["en", "es", "fr", "ja", "ko", "pt", "zh"],
        ];
        let mut step = 0;
        for round in 0..3u64 {
            for (i, ls) in langs.iter().enumerate() {
                step += 1;
                let mut examples = Examples::default();
                for (j, l) in ls.iter().enumerate() {
                    examples.lang.insert(l.to_string(), step * 10 + j as u64);
                }
                let loss = if i == 2 && round == 1 { 3.4e38 } else { 1.0 / step as f64 };
                let grad_norm = (i % 2 == 0).then_some(0.5);
                let body = Body::Train { loss, lr: 1e-5, tokens: step * 64, tokens_per_s: 1e3, examples, grad_norm };
                w.write(&Event::new(step, body)).unwrap();
            }
            step -= 2; // a resume from an earlier checkpoint
        }
        let fast = RunData::load(dir.path());
        let mut slow = RunData::open(dir.path());
        for line in std::fs::read_to_string(&p).unwrap().lines() {
            slow.apply(Decoded::Event(Event::parse(line).unwrap()));
        }
        assert_eq!(fast.bad_lines, 0);
        assert_eq!(fast.loss.steps, slow.loss.steps);
        // Numbers are read to plotting precision, within an ulp of serde's correctly rounded
        // value (a 17-digit timestamp may differ in its last bit).
        let close = |x: f64, y: f64| (x - y).abs() <= 2.0 * f64::EPSILON * y.abs();
        let near = |x: f32, y: f32| (x.to_bits() as i64 - y.to_bits() as i64).abs() <= 1;
        assert!(fast.loss.ys.iter().zip(&slow.loss.ys).all(|(&x, &y)| near(x, y)));
        let (a, b) = (&fast.timeline, &slow.timeline);
        assert!((0..a.len()).all(|i| close(a.time(i), b.time(i))), "{a:?} vs {b:?}");
        assert_eq!((&a.steps, &a.tokens, &a.total_examples), (&b.steps, &b.tokens, &b.total_examples));
        assert_eq!(a.examples, b.examples);
        let names: Vec<&str> = a.examples.names().collect();
        assert_eq!(names, ["ar", "en", "es", "fr", "ja", "ko", "pt", "pt-BR", "zh", "zh-Hant-TW"]);
        assert_eq!(a.steps.len(), 14);
        assert_eq!((fast.lr, fast.tokens_per_s), (Some(1e-5), Some(1e3)));
    }

    /// A line naming the languages of the line before, with counts of every shape: each is a
    /// point with the counts serde reads, or (where serde rejects it) a bad line.
    #[test]
    fn counts_after_a_line_with_the_same_languages_read_as_the_parser_reads_them() {
        let line = |step: u64, langs: &str| {
            format!(
                "{{\"v\":1,\"step\":{step},\"time\":1.5,\"kind\":\"train\",\"loss\":2.5,\"lr\":0.001,\"tokens\":64,\
                 \"tokens_per_s\":10.0,\"examples\":{{\"lang\":{{{langs}}},\"task\":{{}}}}}}\n"
            )
        };
        let shapes = [
            "7",
            "0",
            "013",
            "00",
            "1234567",
            "12345678",
            "123456789012",
            "13.0",
            "13e1",
            "-1",
            "13 ",
            " 13",
            "1}",
            "",
        ];
        let mut maps: Vec<String> =
            shapes.iter().flat_map(|en| shapes.iter().map(move |es| format!("\"en\":{en},\"es\":{es}"))).collect();
        // Separators and keys of every shape.
        for m in ["29;\"es\":13", "29 ,\"es\":13", "29,\"es\":13,", "29,\"es\":13,\"fr\":1", "29", "29,\"eS\":13"] {
            maps.push(format!("\"en\":{m}"));
        }
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("events.jsonl");
        for map in &maps {
            let text = line(1, "\"en\":29,\"es\":13") + &line(2, map) + &line(3, "\"en\":30,\"es\":14");
            std::fs::write(&p, &text).unwrap();
            let fast = RunData::load(dir.path());
            let mut slow = RunData::open(dir.path());
            let mut bad = 0;
            for l in text.lines() {
                match Event::parse(l) {
                    Ok(e) => slow.apply(Decoded::Event(e)),
                    Err(_) => bad += 1,
                }
            }
            let case = format!("{{{map}}}");
            assert_eq!((fast.bad_lines, &fast.loss.steps), (bad, &slow.loss.steps), "{case}");
            assert_eq!(fast.timeline.examples, slow.timeline.examples, "{case}");
            assert_eq!(fast.timeline.total_examples, slow.timeline.total_examples, "{case}");
        }
    }

    #[test]
    fn follows_appends_torn_lines_and_resumes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("events.jsonl");
        let mut w = EventWriter::open(&p).unwrap();
        let ev = |s: u64, l: f64| {
            Event::new(
                s,
                Body::Train {
                    loss: l,
                    lr: 1.0,
                    tokens: s,
                    tokens_per_s: 1.0,
                    examples: Examples::default(),
                    grad_norm: None,
                },
            )
        };
        for s in 1..=10 {
            w.write(&ev(s, 1.0)).unwrap();
        }
        let mut r = RunData::open(dir.path());
        let mut src = Source::new(dir.path());
        assert!(src.poll(&mut r));
        assert_eq!(r.loss.len(), 10);
        assert!(!src.poll(&mut r), "nothing new");
        use std::io::Write;
        let line = ev(11, 2.0).to_line();
        std::fs::OpenOptions::new().append(true).open(&p).unwrap().write_all(&line.as_bytes()[..10]).unwrap();
        src.poll(&mut r);
        assert_eq!(r.loss.len(), 10, "a torn line waits");
        // The writer died; a resumed trainer restarts from step 6.
        let mut w = EventWriter::open(&p).unwrap();
        for s in 6..=8 {
            w.write(&ev(s, 3.0)).unwrap();
        }
        assert!(src.poll(&mut r));
        assert_eq!(r.bad_lines, 1, "the torn line is skipped and counted");
        assert_eq!(r.loss.steps, (1..=8).collect::<Vec<_>>());
        assert_eq!(r.loss.at(8), Some(3.0));
        assert_eq!(r.timeline.steps.len(), 8);
    }

    /// A train line written in two parts, cut at every byte (the whole object but its newline
    /// included): nothing is applied until its newline is written, and then the line once.
    #[test]
    fn a_line_is_applied_once_its_newline_is_written() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("events.jsonl");
        let mut examples = Examples::default();
        examples.lang.insert("en".into(), 7);
        examples.lang.insert("es".into(), 3);
        let body = |loss| Body::Train {
            loss,
            lr: 1e-4,
            tokens: 64,
            tokens_per_s: 5.0,
            examples: examples.clone(),
            grad_norm: Some(0.5),
        };
        let line = Event::new(2, body(2.5)).to_line(); // ends in its newline
        for cut in 1..line.len() {
            std::fs::write(&p, Event::new(1, body(4.0)).to_line()).unwrap();
            let mut r = RunData::open(dir.path());
            let mut src = Source::new(dir.path());
            src.poll(&mut r);
            let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
            f.write_all(&line.as_bytes()[..cut]).unwrap();
            src.poll(&mut r);
            assert_eq!(r.loss.steps, [1], "cut at {cut}: nothing applied yet");
            f.write_all(&line.as_bytes()[cut..]).unwrap();
            assert!(src.poll(&mut r));
            assert_eq!(
                (r.loss.steps.to_vec().as_slice(), r.loss.ys.as_slice()),
                (&[1, 2][..], &[4.0, 2.5][..]),
                "cut at {cut}"
            );
            assert_eq!(r.timeline.examples.current("es"), Some(3.0));
            assert_eq!((r.lr, r.tokens_per_s, r.bad_lines), (Some(1e-4), Some(5.0), 0));
        }
    }

    /// A line longer than the reader's buffer (a status message of megabytes) is read whole,
    /// also when it arrives in pieces, and the lines around it are points.
    #[test]
    fn a_line_longer_than_a_read_chunk_is_read_whole() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("events.jsonl");
        let mut examples = Examples::default();
        examples.lang.insert("en".into(), 1);
        let train = |s: u64| {
            let body = Body::Train {
                loss: 1.0,
                lr: 1e-3,
                tokens: s,
                tokens_per_s: 1e3,
                examples: examples.clone(),
                grad_norm: None,
            };
            Event::new(s, body).to_line()
        };
        let message = "m".repeat(READ_CHUNK as usize * 5 / 2);
        let long = Event::new(2, Body::Status { state: State::Running, message: Some(message.clone()) }).to_line();
        std::fs::write(&p, train(1) + &long + &train(3)).unwrap();
        let mut r = RunData::open(dir.path());
        let mut src = Source::new(dir.path());
        src.poll(&mut r);
        assert_eq!(r.loss.steps, [1, 3]);
        assert_eq!(r.statuses.last().and_then(|s| s.message.as_deref()), Some(message.as_str()));
        // The same line appended in three pieces, polled after each: applied once whole.
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        let (a, b) = long.split_at(READ_CHUNK as usize / 3);
        let (b, c) = b.split_at(READ_CHUNK as usize * 3 / 2);
        for (i, piece) in [a, b, c].into_iter().enumerate() {
            f.write_all(piece.as_bytes()).unwrap();
            src.poll(&mut r);
            assert_eq!(r.statuses.len(), if i == 2 { 2 } else { 1 }, "piece {i}");
        }
        assert_eq!(r.statuses.last().and_then(|s| s.message.as_deref()), Some(message.as_str()));
        f.write_all(train(4).as_bytes()).unwrap();
        src.poll(&mut r);
        assert_eq!((r.loss.steps.to_vec(), r.bad_lines), (vec![1, 3, 4], 0));
        assert_eq!(src.offset(), std::fs::metadata(&p).unwrap().len());
    }

    /// The learning rate and tokens/s shown are the last train line's: across the reader's
    /// chunks (the line is kept once per chunk), after lines of other kinds, and poll to poll.
    #[test]
    fn rates_are_the_last_train_lines_across_chunks_and_polls() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("events.jsonl");
        let mut w = EventWriter::open(&p).unwrap();
        let mut examples = Examples::default();
        examples.lang.insert("en".into(), 1);
        let train = |s: u64| {
            let lr = 1e-3 / s as f64;
            Event::new(
                s,
                Body::Train {
                    loss: 1.0,
                    lr,
                    tokens: s,
                    tokens_per_s: 1000.0 + s as f64,
                    examples: examples.clone(),
                    grad_norm: Some(0.5),
                },
            )
        };
        let check = |w: &mut EventWriter| {
            w.write(&Event::new(1, Body::Checkpoint { path: "c".into(), eval_loss: None, best: None, warnings: 0 }))
        };
        let steps = (READ_CHUNK as usize * 3) / train(1).to_line().len();
        for s in 1..=steps as u64 {
            w.write(&train(s)).unwrap();
        }
        check(&mut w).unwrap();
        let mut r = RunData::open(dir.path());
        let mut src = Source::new(dir.path());
        src.poll(&mut r);
        assert_eq!(r.loss.len(), steps);
        assert_eq!((r.lr, r.tokens_per_s), (Some(1e-3 / steps as f64), Some(1000.0 + steps as f64)));
        for s in steps as u64 + 1..=steps as u64 + 3 {
            w.write(&train(s)).unwrap();
        }
        src.poll(&mut r);
        let last = steps as u64 + 3;
        assert_eq!((r.lr, r.tokens_per_s), (Some(1e-3 / last as f64), Some(1000.0 + last as f64)));
        check(&mut w).unwrap();
        assert!(src.poll(&mut r));
        assert_eq!((r.lr, r.tokens_per_s), (Some(1e-3 / last as f64), Some(1000.0 + last as f64)));
    }
}
