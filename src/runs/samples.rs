//! What the model wrote: each evaluation's answers to the held-out examples, stored with the
//! run (`<run>/samples/<step>.jsonl.zst`, docs/run-directory.md), so that a value on screen
//! can be read back to the answers behind it without loading the model.
//!
//! One file per evaluation, zstd-compressed JSON Lines: a header line (`{"v":1,"step":S}`),
//! then one line per (task, language) set that generated, its examples in the held-out set's
//! order (answer i is the example behind `scores[i]` of the eval event). Written atomically
//! (temporary file, rename); a run keeps the answers of its last [`KEEP_LAST`] evaluations and
//! of its best checkpoint's. Runs written before this existed have no `samples/`: readers say
//! so (`mixscope samples` regenerates from a checkpoint either way).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::RunDir;

/// The directory of a run's stored answers.
pub const DIR: &str = "samples";
/// Evaluations whose answers a run keeps (besides its best checkpoint's).
pub const KEEP_LAST: usize = 16;
/// zstd's level: the demo's evaluation (1,536 answers) compresses in a few milliseconds.
const LEVEL: i32 = 9;
/// The format's version, in each file's header line.
pub const VERSION: u32 = 1;

/// One held-out example as the model answered it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    pub prompt: String,
    pub reference: String,
    /// What the model generated (greedy decoding, as scored).
    pub generation: String,
    /// The task metric of this answer (`null` in the file when not finite).
    #[serde(with = "finite")]
    pub score: f64,
    /// Written in the prompt's language.
    pub lang_ok: bool,
}

/// The answers of one (task, language) set at one evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnswerSet {
    pub task: String,
    pub lang: String,
    pub group: String,
    pub metric: String,
    pub answers: Vec<Answer>,
}

#[derive(Serialize, Deserialize)]
struct Header {
    v: u32,
    step: u64,
}

/// NaN and infinities are `null` in JSON.
mod finite {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        match v.is_finite() {
            true => s.serialize_f64(*v),
            false => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
    }
}

/// `<run>/samples/`.
pub fn dir(run: &Path) -> PathBuf {
    run.join(DIR)
}

/// The file of the evaluation at `step`.
pub fn path(run: &Path, step: u64) -> PathBuf {
    dir(run).join(format!("{step}.jsonl.zst"))
}

/// The steps whose answers a run stores, ascending (none for a run written before answers were
/// stored). Temporary files and other names are not steps.
pub fn steps(run: &Path) -> Vec<u64> {
    let Ok(rd) = std::fs::read_dir(dir(run)) else { return Vec::new() };
    let mut v: Vec<u64> =
        rd.flatten().filter_map(|e| e.file_name().to_str()?.strip_suffix(".jsonl.zst")?.parse::<u64>().ok()).collect();
    v.sort_unstable();
    v
}

/// Store the answers of the evaluation at `step` (atomically: a reader sees the whole file or
/// none; a file of the same step is replaced). Returns the file's size in bytes.
pub fn write(run: &RunDir, step: u64, sets: &[AnswerSet]) -> Result<u64> {
    let d = dir(&run.path);
    crate::util::ensure_real_dir(&d)?;
    let mut raw = serde_json::to_vec(&Header { v: VERSION, step })?;
    raw.push(b'\n');
    for s in sets {
        serde_json::to_writer(&mut raw, s)?;
        raw.push(b'\n');
    }
    let packed = zstd::encode_all(raw.as_slice(), LEVEL).context("compressing the evaluation's answers")?;
    crate::util::write_atomic_private(&path(&run.path, step), &packed)?;
    Ok(packed.len() as u64)
}

/// Delete stored answers beyond the last `keep_last` evaluations, keeping `best`'s. Steps
/// after `now` (a run resumed from an earlier checkpoint redoes them) count as the latest.
pub fn prune(run: &RunDir, keep_last: usize, best: Option<u64>) -> Result<()> {
    let all = steps(&run.path);
    let n = all.len();
    for (i, step) in all.iter().enumerate() {
        if i + keep_last.max(1) >= n || Some(*step) == best {
            continue;
        }
        let p = path(&run.path, *step);
        std::fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
    }
    Ok(())
}

/// Leftovers of a writer killed mid-write (`.tmp-*`), removed when a trainer starts.
pub fn clean_temporaries(run: &RunDir) {
    if let Ok(rd) = std::fs::read_dir(dir(&run.path)) {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with(".tmp-") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// Read the stored sets of the evaluation at `step` that `want` accepts (by task and
/// language); `None` when the run stores no answers for that step. A damaged file is an error
/// naming it and its line.
pub fn read_where(run: &Path, step: u64, want: &dyn Fn(&str, &str) -> bool) -> Result<Option<Vec<AnswerSet>>> {
    let p = path(run, step);
    let f = match std::fs::File::open(&p) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("opening {}", p.display())),
    };
    let dec = zstd::stream::read::Decoder::new(f).with_context(|| format!("reading {}", p.display()))?;
    let mut out = Vec::new();
    let bad = |line: usize, why: String| crate::error::bad_input(format!("{}:{line}: {why}", p.display()));
    for (i, line) in BufReader::new(dec).lines().enumerate() {
        let line = line.map_err(|e| bad(i + 1, format!("cannot decompress: {e}")))?;
        if i == 0 {
            let h: Header = serde_json::from_str(&line).map_err(|e| bad(1, format!("not a samples header: {e}")))?;
            if h.step != step {
                return Err(bad(1, format!("holds step {}, not {step}", h.step)));
            }
            continue;
        }
        if line.trim().is_empty() {
            continue;
        }
        // The task and language first, so that sets nobody asked for are not decoded whole.
        #[derive(Deserialize)]
        struct Key<'a> {
            #[serde(borrow)]
            task: std::borrow::Cow<'a, str>,
            #[serde(borrow)]
            lang: std::borrow::Cow<'a, str>,
        }
        let k: Key = serde_json::from_str(&line).map_err(|e| bad(i + 1, e.to_string()))?;
        if want(&k.task, &k.lang) {
            out.push(serde_json::from_str(&line).map_err(|e| bad(i + 1, e.to_string()))?);
        }
    }
    Ok(Some(out))
}

/// Every stored set of the evaluation at `step` (`None`: not stored).
pub fn read(run: &Path, step: u64) -> Result<Option<Vec<AnswerSet>>> {
    read_where(run, step, &|_, _| true)
}

/// The stored answers of (task, lang) at `step`: `None` when the run stores no answers for
/// that step, `Some(None)` when it does but not for that set.
pub fn read_set(run: &Path, step: u64, task: &str, lang: &str) -> Result<Option<Option<AnswerSet>>> {
    Ok(read_where(run, step, &|t, l| t == task && l == lang)?.map(|mut v| v.pop()))
}

/// The uncompressed text of a stored file (its JSON lines), for tools and tests.
pub fn decompress(p: &Path) -> Result<Vec<u8>> {
    let f = std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?;
    let mut out = Vec::new();
    std::io::copy(&mut zstd::stream::read::Decoder::new(f)?, &mut out)
        .with_context(|| format!("decompressing {}", p.display()))?;
    out.flush()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(task: &str, lang: &str, k: usize) -> AnswerSet {
        AnswerSet {
            task: task.into(),
            lang: lang.into(),
            group: "seen".into(),
            metric: "accuracy".into(),
            answers: (0..k)
                .map(|i| Answer {
                    prompt: format!("{lang}: what is {i} + {i}?\nsecond line"),
                    reference: format!("{}", 2 * i),
                    generation: format!("{} «ünïcode» 答え", i),
                    score: if i % 3 == 0 { 1.0 } else { 0.0 },
                    lang_ok: i % 2 == 0,
                })
                .collect(),
        }
    }

    /// Written and read back equal, one set or all; another step or a run without the
    /// directory reads as not stored.
    #[test]
    fn answers_round_trip_and_missing_ones_are_not_stored() {
        let t = tempfile::tempdir().unwrap();
        let run = RunDir::new(t.path());
        assert_eq!(steps(&run.path), Vec::<u64>::new());
        assert_eq!(read(&run.path, 10).unwrap(), None, "a run written before answers were stored");
        let mut sets = vec![set("mr", "en", 5), set("mr", "es", 4), set("sm", "ja", 3)];
        sets[2].answers[1].score = f64::NAN;
        let bytes = write(&run, 10, &sets).unwrap();
        assert!(bytes > 0 && bytes == std::fs::metadata(path(&run.path, 10)).unwrap().len());
        let back = read(&run.path, 10).unwrap().unwrap();
        assert_eq!(back.len(), 3);
        assert_eq!(back[..2], sets[..2]);
        assert!(back[2].answers[1].score.is_nan() && back[2].answers[0] == sets[2].answers[0]);
        assert_eq!(read_set(&run.path, 10, "mr", "es").unwrap(), Some(Some(sets[1].clone())));
        assert_eq!(read_set(&run.path, 10, "if", "es").unwrap(), Some(None));
        assert_eq!(read_set(&run.path, 20, "mr", "es").unwrap(), None);
        assert_eq!(steps(&run.path), [10]);
        // Nothing else is left beside the file (the write went through a renamed temporary).
        let names: Vec<String> =
            std::fs::read_dir(dir(&run.path)).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        assert_eq!(names, ["10.jsonl.zst"]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path(&run.path, 10)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let text = String::from_utf8(decompress(&path(&run.path, 10)).unwrap()).unwrap();
        assert!(text.starts_with("{\"v\":1,\"step\":10}\n"), "{text}");
        assert_eq!(text.lines().count(), 4);
    }

    /// Pruning keeps the last KEEP_LAST evaluations and the best one, whatever their number.
    #[test]
    fn pruning_keeps_the_last_evaluations_and_the_best() {
        let t = tempfile::tempdir().unwrap();
        let run = RunDir::new(t.path());
        let one = [set("mr", "en", 2)];
        for step in (10..=300).step_by(10) {
            write(&run, step, &one).unwrap();
            prune(&run, KEEP_LAST, Some(30)).unwrap();
            let kept = steps(&run.path);
            assert!(kept.len() <= KEEP_LAST + 1, "{kept:?}");
            assert_eq!(kept.last(), Some(&step));
        }
        let kept = steps(&run.path);
        let mut want: Vec<u64> = vec![30];
        want.extend((300 - 10 * (KEEP_LAST as u64 - 1)..=300).step_by(10));
        assert_eq!(kept, want);
        // A stray temporary file is no step, and is cleaned up.
        std::fs::write(dir(&run.path).join(".tmp-40.jsonl.zst-1"), b"x").unwrap();
        assert_eq!(steps(&run.path), want);
        clean_temporaries(&run);
        assert_eq!(std::fs::read_dir(dir(&run.path)).unwrap().count(), want.len());
    }

    /// A damaged file is an error naming the file (and line), never a panic.
    #[test]
    fn a_damaged_file_is_an_error_naming_it() {
        let t = tempfile::tempdir().unwrap();
        let run = RunDir::new(t.path());
        std::fs::create_dir_all(dir(&run.path)).unwrap();
        std::fs::write(path(&run.path, 5), b"not zstd").unwrap();
        let e = format!("{:#}", read(&run.path, 5).unwrap_err());
        assert!(e.contains("5.jsonl.zst"), "{e}");
        write(&run, 6, &[set("mr", "en", 1)]).unwrap();
        std::fs::rename(path(&run.path, 6), path(&run.path, 7)).unwrap();
        let e = format!("{:#}", read(&run.path, 7).unwrap_err());
        assert!(e.contains("7.jsonl.zst:1: holds step 6, not 7"), "{e}");
    }
}
