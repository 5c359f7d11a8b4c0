//! A 4-point sweep of the tiny model end to end: launched through the queue, grouped in `ls`,
//! reported as CSV whose values are checked against the runs' events, and figures that parse as
//! SVG and decode as PNG.

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;

use common::*;

/// Split a CSV file into a header and rows (the test's fields hold no quotes or commas).
fn csv(path: &Path) -> (Vec<String>, Vec<BTreeMap<String, String>>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let head: Vec<String> = lines.next().unwrap().split(',').map(String::from).collect();
    let rows = lines
        .map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            assert_eq!(cells.len(), head.len(), "{l}");
            head.iter().cloned().zip(cells.iter().map(|c| c.to_string())).collect()
        })
        .collect();
    (head, rows)
}

fn f(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap()
}

#[test]
fn a_four_point_sweep_runs_groups_and_reports() {
    let t = tempfile::tempdir().unwrap();
    let cache = t.path().join("cache");
    let root = t.path().join("runs");
    let rs = root.to_str().unwrap();
    let sweep = fixture("sweep-tiny.toml");
    let sw = sweep.to_str().unwrap();

    // A dry run checks every point and launches nothing.
    let out = ok(run(&cache, &["sweep", sw, "--runs", rs, "--dry-run"]));
    assert!(out.contains("4 points") && out.contains("mixture=en=48,n=24"), "{out}");
    assert!(ls(&cache, &root).is_empty());

    let out = ok(run(&cache, &["sweep", sw, "--runs", rs, "--wait"]));
    assert!(out.contains("4 runs ended, 0 failed"), "{out}");
    let runs = ls(&cache, &root);
    assert_eq!(runs.len(), 4);
    let sweep_id = runs[0]["sweep"]["id"].as_str().unwrap().to_string();
    let mut ns: Vec<u64> = runs
        .iter()
        .map(|r| {
            assert_eq!(r["sweep"]["id"], sweep_id.as_str());
            assert_eq!(r["state"], "finished");
            r["sweep"]["point"]["n"].as_str().unwrap().parse().unwrap()
        })
        .collect();
    ns.sort();
    assert_eq!(ns, [0, 8, 24, 48]);
    // `ls` groups them under the sweep, in grid order.
    let text = ok(run(&cache, &["ls", "--runs", rs]));
    let head = format!("sweep {sweep_id} (tiny-sweep): 4 runs — 4 finished");
    assert!(text.contains(&head), "{text}");
    let order: Vec<&str> = text.lines().filter(|l| l.starts_with("  tiny-sweep")).collect();
    assert!(order[0].contains("n-0-") && order[3].contains("n-48-"), "{text}");

    let out_dir = t.path().join("report");
    let o = out_dir.to_str().unwrap();
    let said = ok(run(&cache, &["report", "--runs", rs, "--out", o, "--sweep", "tiny-sweep"]));
    assert!(said.contains("report of 4 runs (1 sweeps)"), "{said}");
    assert!(said.contains(&format!("sweep {sweep_id} (tiny-sweep): 4 runs, x = n")), "{said}");
    assert!(said.contains("  MR (accuracy): seen~unseen rho"), "{said}");

    // metrics.csv: one row per eval event, with its values, the examples of its language seen by
    // then, and whether its step is the run's best checkpoint.
    let (head, rows) = csv(&out_dir.join("metrics.csv"));
    assert_eq!(
        head,
        [
            "run",
            "name",
            "sweep",
            "point",
            "step",
            "task",
            "lang",
            "group",
            "script",
            "metric",
            "value",
            "loss",
            "n",
            "lang_ok",
            "examples_lang",
            "tokens",
            "is_best"
        ]
    );
    let mut best_of: BTreeMap<String, u64> = BTreeMap::new();
    let mut n_evals = 0;
    for r in &runs {
        let id = r["id"].as_str().unwrap();
        let evs = events(&root.join(id));
        let best = of_kind(&evs, "checkpoint")
            .into_iter()
            .filter(|e| e["eval_loss"].is_number())
            .min_by(|a, b| f(&a["eval_loss"]).total_cmp(&f(&b["eval_loss"])))
            .map(|e| e["step"].as_u64().unwrap())
            .unwrap();
        best_of.insert(id.to_string(), best);
        for e in of_kind(&evs, "eval") {
            n_evals += 1;
            let step = e["step"].as_u64().unwrap();
            let (task, lang) = (e["task"].as_str().unwrap(), e["lang"].as_str().unwrap());
            let found: Vec<&BTreeMap<String, String>> = rows
                .iter()
                .filter(|c| c["run"] == id && c["step"] == step.to_string() && c["task"] == task && c["lang"] == lang)
                .collect();
            assert_eq!(found.len(), 1, "{id} {step} {task} {lang}");
            let c = found[0];
            assert_eq!(c["value"].parse::<f64>().unwrap(), f(&e["value"]), "values are exact");
            assert_eq!(c["loss"].parse::<f64>().unwrap(), f(&e["loss"]));
            assert_eq!(c["n"], e["n"].to_string());
            assert_eq!(c["group"], e["group"].as_str().unwrap());
            assert_eq!(c["sweep"], sweep_id);
            assert_eq!(c["is_best"], (step == best).to_string());
            let train = of_kind(&evs, "train").into_iter().rfind(|t| t["step"].as_u64().unwrap() <= step).unwrap();
            let ex = train["examples"]["lang"][lang].as_u64().unwrap_or(0);
            assert_eq!(c["examples_lang"], ex.to_string(), "{id} {step} {lang}");
        }
        // The additive design: seen languages stay seen at n = 0, with no examples of theirs.
        if r["sweep"]["point"]["n"] == "0" {
            assert!(rows
                .iter()
                .any(|c| c["run"] == id && c["lang"] == "es" && c["group"] == "seen" && c["examples_lang"] == "0"));
        }
    }
    assert_eq!(rows.len(), n_evals);
    assert!(n_evals >= 4 * 2 * 3 * 4, "4 runs × 2 evals × 3 tasks × 4 languages");

    // The sweep table: English at each n is the English score of that point's run at its best step.
    let (head, rows_s) = csv(&out_dir.join(format!("sweep-{sweep_id}.csv")));
    assert_eq!(
        head,
        ["sweep", "task", "metric", "series", "group", "n", "mean", "ci95_lo", "ci95_hi", "k", "seed_sd", "interval"]
    );
    for r in &runs {
        let id = r["id"].as_str().unwrap();
        let n = r["sweep"]["point"]["n"].as_str().unwrap();
        let evs = events(&root.join(id));
        for task in ["mr", "sm", "if"] {
            let en = of_kind(&evs, "eval")
                .into_iter()
                .find(|e| e["step"].as_u64() == Some(best_of[id]) && e["task"] == task && e["lang"] == "en")
                .unwrap();
            let row = rows_s.iter().find(|c| c["task"] == task && c["group"] == "english" && c["n"] == n).unwrap();
            assert_eq!(row["mean"].parse::<f64>().unwrap(), f(&en["value"]), "{task} n={n}");
            assert_eq!(row["k"], "1");
            assert_eq!(row["interval"], "sampling");
            let (lo, hi) = (row["ci95_lo"].parse::<f64>().unwrap(), row["ci95_hi"].parse::<f64>().unwrap());
            assert!(lo <= f(&en["value"]) && f(&en["value"]) <= hi && hi > lo, "a real interval: {row:?}");
            assert!((0.0..=1.0).contains(&lo) && (0.0..=1.0).contains(&hi));
        }
    }
    // Seen and unseen rows exist at every n (Portuguese is held out).
    for n in ["0", "8", "24", "48"] {
        for g in ["seen", "unseen", "latin", "non_latin"] {
            assert!(rows_s.iter().any(|c| c["task"] == "mr" && c["group"] == g && c["n"] == n), "{g} at n={n}");
        }
    }
    let (head, stats) = csv(&out_dir.join(format!("sweep-{sweep_id}-stats.csv")));
    for c in ["spearman_seen_unseen", "plateau_seen", "oscillation_unseen", "run_sd_english"] {
        assert!(head.iter().any(|h| h == c), "{c} in {head:?}");
    }
    assert_eq!(stats.len(), 3, "one row per task");
    assert!(stats.iter().all(|s| s["pairs"] == "4"));

    // runs.csv: the aggregates at the best and the latest step of each run.
    let (_, agg) = csv(&out_dir.join("runs.csv"));
    assert_eq!(agg.len(), 4 * 2 * 3);

    // Figures: valid SVG (parsed as XML, text as text) and decodable, non-blank PNG.
    let mut figs = vec![format!("sweep-{sweep_id}"), format!("sweep-{sweep_id}-scripts"), "loss".to_string()];
    figs.extend(runs.iter().map(|r| format!("run-{}", r["id"].as_str().unwrap())));
    for fig in &figs {
        let svg = std::fs::read_to_string(out_dir.join(format!("{fig}.svg"))).unwrap_or_else(|e| {
            let have: Vec<_> = std::fs::read_dir(&out_dir).unwrap().flatten().map(|e| e.file_name()).collect();
            panic!("{fig}.svg: {e}; the report wrote {have:?}")
        });
        let doc = roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("{fig}.svg: {e}"));
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        assert!(doc.descendants().any(|n| n.is_element() && n.tag_name().name() == "text"));
        let png = std::fs::File::open(out_dir.join(format!("{fig}.png"))).unwrap();
        let mut r = png::Decoder::new(std::io::BufReader::new(png)).read_info().unwrap();
        let mut buf = vec![0; r.output_buffer_size().unwrap()];
        let info = r.next_frame(&mut buf).unwrap();
        assert!(info.width >= 600 && info.height >= 300, "{fig}: {}×{}", info.width, info.height);
        let dark = buf.chunks(3).filter(|p| p.iter().all(|&c| c < 100)).count();
        assert!(dark > 500, "{fig}.png has drawing on it ({dark} dark pixels)");
    }
    let svg = std::fs::read_to_string(out_dir.join(format!("sweep-{sweep_id}.svg"))).unwrap();
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let texts: Vec<&str> =
        doc.descendants().filter(|n| n.has_tag_name("text")).filter_map(|n| n.text()).map(str::trim).collect();
    for want in ["seen", "unseen", "English", "48", "MR", "N examples per language (n)"] {
        assert!(texts.contains(&want), "{want} in {texts:?}");
    }
    let html = std::fs::read_to_string(out_dir.join("index.html")).unwrap();
    for fig in &figs {
        if fig.starts_with("sweep") || fig == "loss" {
            assert!(html.contains(&format!("{fig}.svg")), "index.html shows {fig}");
        }
    }
}

#[test]
fn a_bad_point_launches_nothing_and_names_the_point() {
    let t = tempfile::tempdir().unwrap();
    let cache = t.path().join("cache");
    let root = t.path().join("runs");
    let file = t.path().join("bad.toml");
    let tiny = fixture("tiny.toml");
    std::fs::write(
        &file,
        format!(
            "name = \"bad\"\nconfig = \"{}\"\n[set]\nmixture = \"en=48,{{lang}}=8\"\n[grid]\nlang = [\"es\", \"xx\"]\n",
            tiny.display()
        ),
    )
    .unwrap();
    let msg = bad(run(&cache, &["sweep", file.to_str().unwrap(), "--runs", root.to_str().unwrap()]));
    assert!(msg.contains("point lang=xx") && msg.contains("unknown language 'xx'"), "{msg}");
    assert!(ls(&cache, &root).is_empty(), "the good point was not launched either");
    std::fs::write(&file, "name = \"bad\"\nconfig = \"c.toml\"\n[grid]\nn = [1, 1]\n").unwrap();
    let msg = bad(run(&cache, &["sweep", file.to_str().unwrap(), "--runs", root.to_str().unwrap()]));
    assert!(msg.contains("bad.toml:4:5: grid.n: value 1 is listed twice"), "{msg}");
    let msg =
        bad(run(&cache, &["report", "--runs", root.to_str().unwrap(), "--out", t.path().join("r").to_str().unwrap()]));
    assert!(msg.contains("nothing to report"), "{msg}");
}
