//! Fitting the tools researchers already use: a run's live TensorBoard file decodes (with the
//! tests' own reader) to exactly its events.jsonl; `export --tensorboard` writes the same for
//! an older run; shell completions and man pages come from the command line's definitions;
//! user files live under $XDG_CONFIG_HOME/mixscope/.

use crate::common;
use common::tfevents::{self, What};
use common::*;
use std::collections::BTreeMap;
use std::path::Path;

fn train_tiny(cache: &Path, dir: &Path, sets: &[&str]) {
    let mut c = cmd(cache);
    c.args(["train", fixture("tiny.toml").to_str().unwrap(), "--run-dir", dir.to_str().unwrap(), "-q"]);
    for s in sets {
        c.args(["--set", s]);
    }
    ok(c.output().unwrap());
}

/// The scalars events.jsonl implies: train values, eval values, and each eval round's group
/// averages, computed here from the events.
fn expected(dir: &Path) -> BTreeMap<String, BTreeMap<u64, f32>> {
    let mut out: BTreeMap<String, BTreeMap<u64, f32>> = BTreeMap::new();
    let mut put = |tag: String, step: u64, v: f64| {
        out.entry(tag).or_default().insert(step, v as f32);
    };
    let evs = events(dir);
    // (step, task, metric) → (lang, group, value, loss) of each result
    type Round = Vec<(String, String, f64, f64)>;
    let mut rounds: BTreeMap<(u64, String, String), Round> = BTreeMap::new();
    for e in &evs {
        let step = e["step"].as_u64().unwrap();
        match e["kind"].as_str().unwrap() {
            "train" => {
                for k in ["loss", "lr", "grad_norm"] {
                    put(format!("train/{k}"), step, e[k].as_f64().unwrap());
                }
            }
            "eval" => {
                let (t, l, m) =
                    (e["task"].as_str().unwrap(), e["lang"].as_str().unwrap(), e["metric"].as_str().unwrap());
                put(format!("eval/{t}/{m}/{l}"), step, e["value"].as_f64().unwrap());
                put(format!("eval_loss/{t}/{l}"), step, e["loss"].as_f64().unwrap());
                if let Some(ok) = e["lang_ok"].as_f64() {
                    put(format!("lang_ok/{t}/{l}"), step, ok);
                }
                rounds.entry((step, t.into(), m.into())).or_default().push((
                    l.into(),
                    e["group"].as_str().unwrap().into(),
                    e["value"].as_f64().unwrap(),
                    e["loss"].as_f64().unwrap(),
                ));
            }
            "checkpoint" => {
                if let Some(l) = e["eval_loss"].as_f64() {
                    put("eval_loss/selection".into(), step, l);
                }
            }
            _ => {}
        }
    }
    let mean = |v: Vec<f64>| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
    for ((step, t, m), cells) in rounds {
        let of = |g: &str, loss: bool| {
            mean(cells.iter().filter(|c| c.0 != "en" && c.1 == g).map(|c| if loss { c.3 } else { c.2 }).collect())
        };
        let en = cells.iter().find(|c| c.0 == "en").map(|c| c.2);
        let non_en = mean(cells.iter().filter(|c| c.0 != "en").map(|c| c.2).collect());
        for (name, v) in [("seen_avg", of("seen", false)), ("unseen_avg", of("unseen", false))] {
            if let Some(v) = v {
                put(format!("eval/{t}/{m}/{name}"), step, v);
            }
        }
        if let (Some(n), Some(e)) = (non_en, en.filter(|e| *e != 0.0)) {
            put(format!("eval/{t}/{m}/ratio_to_en"), step, n / e);
        }
        for (name, v) in [("seen_avg", of("seen", true)), ("unseen_avg", of("unseen", true))] {
            if let Some(v) = v {
                put(format!("eval_loss/{t}/{name}"), step, v);
            }
        }
    }
    out
}

fn close(a: &BTreeMap<String, BTreeMap<u64, f32>>, b: &BTreeMap<String, BTreeMap<u64, f32>>) {
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (tag, pts) in a {
        assert_eq!(pts.keys().collect::<Vec<_>>(), b[tag].keys().collect::<Vec<_>>(), "{tag}: steps");
        for (s, v) in pts {
            let w = b[tag][s];
            // Group averages are summed in another order here: f32 rounding of the same mean.
            assert!((v - w).abs() <= 1e-6 * v.abs().max(1.0), "{tag} at step {s}: {v} vs {w}");
        }
    }
}

#[test]
fn a_runs_tensorboard_file_holds_its_events_and_export_writes_the_same() {
    let t = tempfile::tempdir().unwrap();
    let cache = t.path();
    let dir = t.path().join("runs/tb");
    train_tiny(cache, &dir, &[]);

    let files = tfevents::files(&dir.join("tensorboard"));
    assert_eq!(files.len(), 1, "{files:?}");
    let (recs, torn) = tfevents::read(&files[0]);
    assert_eq!(torn, 0);
    assert_eq!(recs[0].what, What::FileVersion("brain.Event:2".into()));
    assert_eq!((&recs[1].what, recs[1].step), (&What::Session(1), 1), "a START at the first step trained");
    // Every record's wall time is its event's time; steps never go back within the file.
    let times: Vec<f64> = events(&dir).iter().map(|e| e["time"].as_f64().unwrap()).collect();
    for r in &recs[1..] {
        assert!(times.contains(&r.wall_time), "a record at {} is no event's time", r.wall_time);
    }
    assert!(recs.windows(2).all(|w| w[0].step <= w[1].step || w[1].step == 1));

    let mut shown = tfevents::scalars(&dir.join("tensorboard"));
    let tps = shown.remove("train/tokens_per_s").expect("tokens/s is logged");
    assert_eq!(tps.len(), 30);
    let want = expected(&dir);
    close(&shown, &want);
    for tag in [
        "train/loss",
        "eval/mr/accuracy/en",
        "eval/mr/accuracy/seen_avg",
        "eval/mr/accuracy/unseen_avg",
        "eval/sm/rouge_l/pt",
        "eval_loss/if/es",
        "eval_loss/sm/seen_avg",
        "eval_loss/selection",
        "lang_ok/sm/ja",
    ] {
        assert!(shown.contains_key(tag), "no {tag} in {:?}", shown.keys());
    }
    assert_eq!(shown["eval/mr/accuracy/en"].keys().copied().collect::<Vec<_>>(), vec![10, 20, 30]);

    // The same run exported from events.jsonl gives the same scalars.
    let out = t.path().join("tb-export");
    let root = t.path().join("runs");
    let said =
        ok(run(cache, &["export", "tb", "--runs", root.to_str().unwrap(), "--tensorboard", out.to_str().unwrap()]));
    assert!(said.contains("exported"), "{said}");
    let mut exported = tfevents::scalars(&out.join("tb"));
    exported.remove("train/tokens_per_s");
    close(&exported, &want);
    // Exporting again replaces the file rather than adding a second one.
    ok(run(cache, &["export", "tb", "--runs", root.to_str().unwrap(), "--tensorboard", out.to_str().unwrap()]));
    assert_eq!(tfevents::files(&out.join("tb")).len(), 1);

    // `[logging] tensorboard = false` writes none; `export` still can.
    let quiet = t.path().join("runs/quiet");
    train_tiny(cache, &quiet, &["logging.tensorboard=false", "max_steps=3"]);
    assert!(!quiet.join("tensorboard").exists());
    // export needs --out or --tensorboard, and says so
    let e = String::from_utf8_lossy(&run(cache, &["export", "quiet", "--runs", root.to_str().unwrap()]).stderr)
        .into_owned();
    assert!(e.contains("--out") && e.contains("--tensorboard"), "{e}");
}

#[test]
fn completions_source_in_bash_and_the_man_page_renders() {
    let t = tempfile::tempdir().unwrap();
    let bash = ok(run(t.path(), &["completions", "bash"]));
    let f = t.path().join("mixscope.bash");
    std::fs::write(&f, &bash).unwrap();
    let o = std::process::Command::new("bash").arg("-n").arg(&f).output().unwrap();
    assert!(o.status.success(), "bash -n: {}", String::from_utf8_lossy(&o.stderr));
    // Sourced, it completes subcommands (and not the internal ones).
    let script = format!(
        "source {}; COMP_WORDS=(mixscope co); COMP_CWORD=1; COMP_LINE='mixscope co'; COMP_POINT=11; _mixscope mixscope co mixscope; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        f.display()
    );
    let o = std::process::Command::new("bash").arg("-c").arg(&script).output().unwrap();
    let words = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(words.lines().any(|w| w == "compare") && words.lines().any(|w| w == "completions"), "{words}");
    assert!(!bash.contains(" _run ") && !bash.contains(" _supervise "), "internal subcommands are offered");
    for shell in ["zsh", "fish"] {
        let s = ok(run(t.path(), &["completions", shell]));
        assert!(s.contains("compare") && s.contains("--tensorboard"), "{shell}");
    }
    let bad = bad(run(t.path(), &["completions", "tcsh"]));
    assert!(bad.contains("tcsh"), "{bad}");

    // The man page renders without warnings (groff -ww), as does each subcommand's.
    let dir = t.path().join("man");
    ok(run(t.path(), &["man", "--out", dir.to_str().unwrap()]));
    let pages: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.path()).collect();
    assert!(pages.iter().any(|p| p.ends_with("mixscope-export.1")), "{pages:?}");
    assert!(!pages.iter().any(|p| p.to_string_lossy().contains("_run")), "{pages:?}");
    for p in &pages {
        let o = std::process::Command::new("groff").args(["-man", "-Tutf8", "-ww", "-z"]).arg(p).output();
        let o = o.expect("groff is installed (.ci/run installs groff-base)");
        assert!(o.status.success() && o.stderr.is_empty(), "{}: {}", p.display(), String::from_utf8_lossy(&o.stderr));
    }
    let page = ok(run(t.path(), &["man"]));
    assert!(page.starts_with(".ie") || page.contains(".TH mixscope 1"), "{}", &page[..200.min(page.len())]);
}

#[test]
fn user_files_live_under_xdg_config_home() {
    let t = tempfile::tempdir().unwrap();
    let cache = t.path();
    let xdg = t.path().join("xdg");
    let conf = xdg.join("mixscope");
    std::fs::create_dir_all(&conf).unwrap();
    let root = t.path().join("elsewhere/runs");
    // A run in the root the user's config names; `ls` without --runs finds it there.
    train_tiny(cache, &root.join("mine"), &["max_steps=2", "eval_every=0"]);
    std::fs::write(conf.join("config.toml"), format!("runs = {:?}\ntheme = \"light\"\n", root.display().to_string()))
        .unwrap();
    let user = |args: &[&str]| {
        let mut c = cmd(cache);
        c.env_remove("MIXSCOPE_CONFIG_DIR").env("XDG_CONFIG_HOME", &xdg).current_dir(t.path());
        c.args(args).output().unwrap()
    };
    let ls: serde_json::Value = serde_json::from_str(&ok(user(&["ls", "--json"]))).unwrap();
    assert_eq!(ls.as_array().unwrap().len(), 1, "{ls}");
    assert_eq!(ls[0]["id"], "mine");
    // MIXSCOPE_RUNS still wins over the file.
    let mut c = cmd(cache);
    c.env_remove("MIXSCOPE_CONFIG_DIR").env("XDG_CONFIG_HOME", &xdg).env("MIXSCOPE_RUNS", t.path().join("none"));
    let ls: serde_json::Value = serde_json::from_str(&ok(c.args(["ls", "--json"]).output().unwrap())).unwrap();
    assert_eq!(ls.as_array().unwrap().len(), 0);
    // A mistake in the file is an error at its place, exit 2, for every command.
    std::fs::write(conf.join("config.toml"), "runs = \"r\"\nthemes = \"light\"\n").unwrap();
    let e = bad(user(&["ls"]));
    assert!(e.contains("mixscope/config.toml:2:1") && e.contains("themes"), "{e}");
}

#[test]
fn no_color_turns_the_command_lines_colours_off() {
    // On a terminal (`script` gives the command a pty), `--help` and errors are coloured...
    let on_tty = |no_color: bool| {
        let mut c = std::process::Command::new("script");
        c.args(["-qc", &format!("{} lss", bin().display()), "/dev/null"]).env("TERM", "xterm-256color");
        if no_color {
            c.env("NO_COLOR", "1");
        } else {
            c.env_remove("NO_COLOR");
        }
        String::from_utf8_lossy(&c.output().expect("script (util-linux) runs").stdout).into_owned()
    };
    let coloured = on_tty(false);
    assert!(coloured.contains("unrecognized subcommand") && coloured.contains('\x1b'), "{coloured:?}");
    // ...and with NO_COLOR they are not.
    let plain = on_tty(true);
    assert!(plain.contains("unrecognized subcommand") && !plain.contains('\x1b'), "{plain:?}");
}
