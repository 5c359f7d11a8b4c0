//! User data: JSONL files with `prompt`/`response` or chat `messages`, plus `lang` and `task`.
//!
//! ```text
//! {"lang":"es","task":"qa","prompt":"¿Capital de Francia?","response":"París."}
//! {"lang":"ja","task":"chat","messages":[{"role":"user","content":"…"},{"role":"assistant","content":"…"}]}
//! ```
//! A bad line is an error naming `file:line` and the reason; nothing is half-loaded. Each
//! (task, lang) is split deterministically (by a hash of the prompt) into train and held-out.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;

use anyhow::{Context, Result};
use serde::Deserialize;

use super::example::{Example, Meta, Task};
use super::lang;
use super::sampler::Source;
use crate::bail_input;

/// The longest line accepted (bytes).
pub const MAX_LINE: usize = 1 << 20;

#[derive(Deserialize)]
struct Line {
    lang: Option<String>,
    task: Option<String>,
    prompt: Option<String>,
    response: Option<String>,
    messages: Option<Vec<Message>>,
    #[serde(default)]
    answer: Option<i64>,
}

#[derive(Deserialize)]
struct Message {
    role: String,
    content: String,
}

/// Loaded user data, split per (task, lang).
#[derive(Debug, Default, Clone)]
pub struct UserData {
    pub train: BTreeMap<(Task, String), Vec<Example>>,
    pub heldout: BTreeMap<(Task, String), Vec<Example>>,
}

impl UserData {
    /// Load and check every file.
    pub fn load(files: &[std::path::PathBuf]) -> Result<UserData> {
        let mut all: BTreeMap<(Task, String), Vec<Example>> = BTreeMap::new();
        for f in files {
            for ex in read_file(f)? {
                all.entry((ex.task.clone(), ex.lang.clone())).or_default().push(ex);
            }
        }
        let mut d = UserData::default();
        for (k, exs) in all {
            let (mut tr, mut ho) = (Vec::new(), Vec::new());
            for ex in exs {
                let mut h = super::suite::Fnv::default();
                std::hash::Hash::hash(&ex.prompt, &mut h);
                std::hash::Hash::hash(&ex.response, &mut h);
                if super::suite::split_of(std::hash::Hasher::finish(&h)) == super::suite::Split::Heldout {
                    ho.push(ex);
                } else {
                    tr.push(ex);
                }
            }
            // A tiny set still gets a held-out example, and keeps a train one.
            if ho.is_empty() && tr.len() >= 2 {
                ho.push(tr.pop().unwrap());
            }
            if tr.is_empty() && ho.len() >= 2 {
                tr.push(ho.pop().unwrap());
            }
            d.train.insert(k.clone(), tr);
            d.heldout.insert(k, ho);
        }
        Ok(d)
    }

    /// Per (task, lang): (train, held-out) counts.
    pub fn counts(&self) -> Vec<(Task, String, usize, usize)> {
        self.train
            .iter()
            .map(|((t, l), v)| {
                (t.clone(), l.clone(), v.len(), self.heldout.get(&(t.clone(), l.clone())).map_or(0, Vec::len))
            })
            .collect()
    }

    pub fn tasks(&self) -> Vec<String> {
        let mut v: Vec<String> = self.train.keys().map(|(t, _)| t.to_string()).collect();
        v.dedup();
        v
    }
}

/// Read one JSONL file.
pub fn read_file(path: &Path) -> Result<Vec<Example>> {
    let name = path.display().to_string();
    let f = std::fs::File::open(path).map_err(|e| crate::error::bad_input(format!("{name}: cannot open: {e}")))?;
    let mut r = BufReader::new(f);
    let mut out = Vec::new();
    let mut buf = Vec::new();
    let mut no = 0usize;
    loop {
        buf.clear();
        let n = r.read_until(b'\n', &mut buf).with_context(|| format!("reading {name}"))?;
        if n == 0 {
            break;
        }
        no += 1;
        if buf.len() > MAX_LINE {
            bail_input!("{name}:{no}: line is {} bytes, more than the {MAX_LINE} allowed", buf.len());
        }
        let Ok(text) = std::str::from_utf8(&buf) else {
            let at = std::str::from_utf8(&buf).unwrap_err().valid_up_to();
            bail_input!("{name}:{no}:{}: invalid UTF-8", at + 1);
        };
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        let line: Line = serde_json::from_str(text)
            .map_err(|e| crate::error::bad_input(format!("{name}:{no}:{}: {e}", e.column())))?;
        out.push(to_example(line).map_err(|m| crate::error::bad_input(format!("{name}:{no}: {m}")))?);
    }
    if out.is_empty() {
        bail_input!("{name}: no examples");
    }
    Ok(out)
}

fn to_example(l: Line) -> std::result::Result<Example, String> {
    let lang = l.lang.ok_or("missing field `lang`")?;
    if lang::get(&lang).is_none() {
        return Err(format!("unknown language '{lang}' (known: {})", lang::codes().join(" ")));
    }
    let task = l.task.ok_or("missing field `task`")?;
    if task.is_empty() || !task.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return Err(format!("task '{task}' must be a short name of letters, digits, _ and -"));
    }
    let (prompt, response) = match (l.prompt, l.response, l.messages) {
        (Some(p), Some(r), None) => (p, r),
        (None, None, Some(msgs)) => {
            let user: Vec<&str> = msgs.iter().filter(|m| m.role == "user").map(|m| m.content.as_str()).collect();
            let asst =
                msgs.iter().rev().find(|m| m.role == "assistant").ok_or("`messages` has no assistant message")?;
            if let Some(bad) = msgs.iter().find(|m| !["system", "user", "assistant"].contains(&m.role.as_str())) {
                return Err(format!("message role '{}' is not system, user or assistant", bad.role));
            }
            (user.join("\n"), asst.content.clone())
        }
        (_, _, Some(_)) => return Err("give either prompt/response or messages, not both".into()),
        (None, _, None) => return Err("missing field `prompt` (or `messages`)".into()),
        (_, None, None) => return Err("missing field `response`".into()),
    };
    if response.trim().is_empty() {
        return Err("empty response".into());
    }
    let task = Task::parse(&task);
    let mut meta = Meta::default();
    if task == Task::Mr {
        meta.answer = l.answer.or_else(|| crate::eval::numbers::final_number(&response, &lang));
    }
    Ok(Example { task, lang, prompt, response, meta })
}

/// The suite plus user data, as one sampler source.
pub struct DataSource {
    pub opts: super::suite::GenOptions,
    pub user: UserData,
}

impl Source for DataSource {
    fn train(&self, task: &Task, lang: &str, seed: u64, index: u64) -> Result<Example> {
        if let Some(v) = self.user.train.get(&(task.clone(), lang.to_string())) {
            if v.is_empty() {
                anyhow::bail!("no training examples of {task}/{lang} in the user data");
            }
            // A fresh shuffle of the user's examples per epoch.
            let n = v.len() as u64;
            let (epoch, i) = (index / n, index % n);
            let mut order: Vec<u32> = (0..n as u32).collect();
            use rand::seq::SliceRandom;
            use rand::SeedableRng;
            let mut rng =
                rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ epoch.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x7573_6572);
            order.shuffle(&mut rng);
            return Ok(v[order[i as usize] as usize].clone());
        }
        super::suite::suite().train(task, lang, seed, index, &self.opts)
    }
}

impl DataSource {
    /// The held-out set of (task, lang): the user's, or the suite's fixed one.
    pub fn heldout(&self, task: &Task, lang: &str, n: usize) -> Result<Vec<Example>> {
        if let Some(v) = self.user.heldout.get(&(task.clone(), lang.to_string())) {
            return Ok(v.iter().take(n).cloned().collect());
        }
        super::suite::suite().heldout(task, lang, n, &self.opts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(lines: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(lines).unwrap();
        f
    }

    #[test]
    fn loads_both_forms_and_splits() {
        let mut text = String::new();
        for i in 0..40 {
            text.push_str(&format!("{{\"lang\":\"es\",\"task\":\"qa\",\"prompt\":\"p{i}\",\"response\":\"r{i}\"}}\n"));
        }
        text.push_str(r#"{"lang":"ja","task":"chat","messages":[{"role":"system","content":"s"},{"role":"user","content":"u"},{"role":"assistant","content":"a"}]}"#);
        text.push('\n');
        let f = file(text.as_bytes());
        let d = UserData::load(&[f.path().to_path_buf()]).unwrap();
        let c = d.counts();
        let qa = c.iter().find(|(t, l, _, _)| t.as_str() == "qa" && l == "es").unwrap();
        assert_eq!(qa.2 + qa.3, 40);
        assert!(qa.3 >= 1 && qa.2 > qa.3);
        let chat = &d.train[&(Task::parse("chat"), "ja".to_string())];
        assert_eq!(chat[0].prompt, "u");
        assert_eq!(chat[0].response, "a");
    }

    #[test]
    fn bad_lines_name_file_line_and_reason() {
        for (bytes, want) in [
            (&b"{\"lang\":\"es\",\"task\":\"qa\",\"prompt\":\"p\"}\n"[..], ":1: missing field `response`"),
            (b"\n{\"lang\":\"xx\",\"task\":\"qa\",\"prompt\":\"p\",\"response\":\"r\"}\n", ":2: unknown language 'xx'"),
            (b"{\"lang\":\"es\",\"task\":\"qa\",\"prompt\":\"p\",\"response\":\"  \"}\n", ":1: empty response"),
            (b"{\"lang\":\"es\",\"task\":\"qa\",\"prompt\":\"p\xff\",\"response\":\"r\"}\n", ":1:37: invalid UTF-8"),
            (b"{\"lang\":\"es\",", ":1:"),
            (b"{\"task\":\"qa\",\"prompt\":\"p\",\"response\":\"r\"}\n", "missing field `lang`"),
            (b"{\"lang\":\"es\",\"task\":\"a b\",\"prompt\":\"p\",\"response\":\"r\"}\n", "short name"),
            (
                b"{\"lang\":\"es\",\"task\":\"qa\",\"messages\":[{\"role\":\"user\",\"content\":\"u\"}]}\n",
                "no assistant message",
            ),
            (b"", "no examples"),
        ] {
            let f = file(bytes);
            let e = read_file(f.path()).unwrap_err();
            assert!(crate::error::is_bad_input(&e));
            let s = e.to_string();
            assert!(s.contains(want), "{s} / {want}");
            assert!(s.starts_with(&f.path().display().to_string()), "{s}");
        }
        let huge =
            format!("{{\"lang\":\"es\",\"task\":\"qa\",\"prompt\":\"{}\",\"response\":\"r\"}}\n", "x".repeat(MAX_LINE));
        let f = file(huge.as_bytes());
        assert!(read_file(f.path()).unwrap_err().to_string().contains("more than"));
    }
}
