//! The report's `index.html`: the sweeps' tables and figures, the loss figure, the comparison,
//! and a table of every group of seeds and run alone with each value's 95 % interval, what the
//! interval covers (across seeds, or sampling only), K, n and the lineage; then each one's
//! languages figure.

use std::fmt::Write as _;

use crate::analysis::sweep::SweepAnalysis;
use crate::analysis::{compare, CompareRow, EvalTable};

use super::plots::interval_words;
use super::{ReportRun, ReportSide};

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn cell(v: Option<f64>) -> String {
    v.filter(|x| x.is_finite()).map_or("–".into(), |x| format!("{x:.3}"))
}

/// A value with its interval: `0.800 [0.712, 0.869]`; a value that has none says so.
fn with_ci(v: Option<f64>, ci: Option<[f64; 2]>) -> String {
    match (v.filter(|x| x.is_finite()), ci) {
        (None, _) => "–".into(),
        (Some(v), Some([lo, hi])) => format!("{v:.3} <span class=ci>[{lo:.3}, {hi:.3}]</span>"),
        (Some(v), None) => format!("{v:.3} <span class=ci>(no interval)</span>"),
    }
}

/// The distinct values of a list, joined (`1500` for three equal ones, `1125, 1500` else).
fn distinct(mut v: Vec<String>) -> String {
    v.sort();
    v.dedup();
    if v.is_empty() {
        "–".into()
    } else {
        v.join(", ")
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;max-width:1500px;color:#222}\
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:right;\
vertical-align:top}th{background:#f4f4f4}td.l,th.l{text-align:left}img{max-width:100%;border:1px solid #eee}\
code{background:#f4f4f4;padding:0 .2em}.ci{color:#666;font-size:90%}.small{color:#666;font-size:85%}";

pub(super) fn index_html(
    runs: &[ReportRun],
    sides: &[ReportSide],
    analyses: &[SweepAnalysis],
    files: &[String],
    context: &[(String, String)],
) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>mixscope report</title>\n\
         <style>{STYLE}</style></head><body>\n<h1>mixscope report</h1>\n<p>{} runs in {} groups of seeds and runs \
         alone, {} sweeps. Data: <a href=\"metrics.csv\">metrics.csv</a> (every per-language result per run and \
         step), <a href=\"runs.csv\">runs.csv</a> (aggregates at the best and latest step), \
         <a href=\"groups.csv\">groups.csv</a> (per group of seeds: means with intervals over seeds, K, seed sd), \
         <a href=\"report.json\">report.json</a>.</p>\n<p>Every value is shown with its 95 % interval and the \
         examples it rests on (n per language and evaluation). For a group of seeds (runs that differ only in \
         seed) the value is the mean over its K runs and the interval is the t-interval across them: it covers \
         the training's own randomness. For a run alone the interval is the evaluation's sampling error only \
         (Wilson's for accuracy and pass rates, the bootstrap for ROUGE-L): another training run of the same \
         config can land outside it.</p>\n",
        runs.len(),
        sides.len(),
        analyses.len()
    );
    for a in analyses {
        sweep_section(&mut h, a);
    }
    h.push_str("<h2>Loss</h2>\n<img src=\"loss.svg\" alt=\"loss curves\">\n");
    if !context.is_empty() {
        h.push_str("<p>Drawn as context above, each on its own steps: ");
        let links: Vec<String> =
            context.iter().map(|(stem, label)| format!("<a href=\"{}.svg\">{}</a>", esc(stem), esc(label))).collect();
        let _ = writeln!(h, "{}.</p>", links.join(", "));
    }
    if files.iter().any(|f| f == "compare.svg") {
        h.push_str(
            "<h2>Compare</h2>\n<p>The runs and groups named on the command line, side by side on identical axes \
             (<code>mixscope compare</code> gives the deltas with their intervals).</p>\n\
             <img src=\"compare.svg\" alt=\"comparison\">\n",
        );
    }
    runs_table(&mut h, runs, sides, files);
    h.push_str("<h2>Languages</h2>\n");
    let shown = sides.iter().filter(|s| s.figure.as_ref().is_some_and(|f| files.contains(&format!("{f}.svg"))));
    for (i, s) in shown.enumerate() {
        let f = s.figure.as_deref().unwrap_or_default();
        if i < 24 {
            let _ = writeln!(
                h,
                "<h3 id=\"{f}\">{}</h3>\n<img src=\"{f}.svg\" alt=\"languages of {}\">",
                esc(&s.label),
                esc(&s.label),
                f = esc(f)
            );
        } else {
            let _ = writeln!(h, "<p><a href=\"{f}.svg\">{}</a></p>", esc(&s.label), f = esc(f));
        }
    }
    // Runs whose run.toml cannot be read: their events are in the tables above; why they are
    // damaged is said here.
    let damaged: Vec<&ReportRun> = runs.iter().filter(|r| r.st.config.is_none()).collect();
    if !damaged.is_empty() {
        h.push_str("<h2>Damaged runs</h2>\n<ul>\n");
        for r in damaged {
            let _ = writeln!(h, "<li>{}: {}</li>", esc(&r.st.id), esc(r.st.message.as_deref().unwrap_or("damaged")));
        }
        h.push_str("</ul>\n");
    }
    h.push_str("</body></html>\n");
    h
}

fn sweep_section(h: &mut String, a: &SweepAnalysis) {
    let _ = write!(
        h,
        "<h2>Sweep {} <code>{}</code></h2>\n<p>{} runs; x = <code>{}</code>; each run read at its best held-out-loss \
         checkpoint. Error bars: 95 % intervals; where a point has several seeds, the t-interval over them (it \
         covers the training's own randomness: <code>interval = seeds</code> in the CSV), else the held-out sets' \
         sampling error (binomial for accuracy and pass rate, bootstrap for ROUGE-L; <code>interval = sampling</code>). \
         Tables: <a href=\"sweep-{id}.csv\">sweep-{id}.csv</a>, <a href=\"sweep-{id}-stats.csv\">sweep-{id}-stats.csv</a>.</p>\n\
         <img src=\"sweep-{id}.svg\" alt=\"sweep figure\"><br><img src=\"sweep-{id}-scripts.svg\" alt=\"Latin vs non-Latin\">\n",
        esc(&a.name),
        esc(&a.id),
        a.runs.len(),
        esc(a.x_var.as_deref().unwrap_or("-")),
        id = esc(&a.id)
    );
    h.push_str(
        "<table><tr><th class=l>task</th><th>series</th><th>Spearman seen~unseen</th><th>pairs</th>\
         <th>plateau English</th><th>plateau seen</th><th>plateau unseen</th><th>oscillation seen</th>\
         <th>oscillation unseen</th><th>seed sd seen</th></tr>\n",
    );
    for s in &a.stats {
        let pl = |g: &str| match s.plateau.get(g) {
            Some(Some(x)) => format!("{x}"),
            Some(None) => "not reached".into(),
            None => "–".into(),
        };
        let _ = writeln!(
            h,
            "<tr><td class=l>{} ({})</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&s.task.to_uppercase()),
            esc(&s.metric),
            esc(if s.series.is_empty() { "–" } else { &s.series }),
            cell(s.spearman_seen_unseen),
            s.pairs,
            pl("english"),
            pl("seen"),
            pl("unseen"),
            cell(s.oscillation.get("seen").copied().flatten()),
            cell(s.oscillation.get("unseen").copied().flatten()),
            cell(s.mean_run_sd.get("seen").copied().flatten()),
        );
    }
    h.push_str("</table>\n");
}

/// The examples each language's value rests on, for a task's rows (`64`, or `48–64`).
fn n_of(rows: &[&CompareRow]) -> String {
    let ns: Vec<u64> = rows.iter().filter(|r| !r.is_aggregate()).filter_map(|r| r.n[0]).collect();
    match (ns.iter().min(), ns.iter().max()) {
        (Some(a), Some(b)) if a == b => a.to_string(),
        (Some(a), Some(b)) => format!("{a}–{b}"),
        _ => "–".into(),
    }
}

/// The tags and notes of a row's runs under its name (each run's id first, in a group).
fn notes_html(members: &[&ReportRun]) -> String {
    let mut h = String::new();
    for r in members.iter().filter(|r| !r.notes.is_empty()) {
        let who = if members.len() > 1 { format!("{}: ", esc(&r.st.id)) } else { String::new() };
        let tags: Vec<String> = r.notes.tags.iter().map(|t| format!("<code>{}</code>", esc(t))).collect();
        let note = esc(r.notes.note.trim()).replace('\n', "<br>");
        let note = if note.is_empty() { String::new() } else { format!(" <em>{note}</em>") };
        let _ = write!(h, "<br><span class=small>{who}{}{note}</span>", tags.join(" "));
    }
    h
}

fn runs_table(h: &mut String, runs: &[ReportRun], sides: &[ReportSide], files: &[String]) {
    h.push_str(
        "<h2>Groups and runs</h2>\n<p>Each group of seeds (one row, its runs listed) and each run alone, at each \
         run's best held-out-loss checkpoint (its latest evaluation when it has none). <i>from</i>: the run it \
         was forked or fine-tuned from, and at which step. <i>n</i>: examples per language and evaluation; the \
         averages rest on their languages'.</p>\n<table><tr><th class=l>group or run</th><th>K</th>\
         <th class=l>intervals</th><th>state</th><th>step</th><th>best step</th><th class=l>from</th>\
         <th class=l>mixture</th><th class=l>task</th><th>English</th><th>seen avg</th><th>unseen avg</th>\
         <th>gap (seen−unseen)</th><th>÷ English</th><th>n</th></tr>\n",
    );
    let label_of = |id: &str| runs.iter().find(|r| r.st.id == id).map_or(id.to_string(), |r| r.label());
    for s in sides {
        let members: Vec<&ReportRun> = s.runs.iter().map(|&i| &runs[i]).collect();
        let tables: Vec<&EvalTable> = members.iter().map(|r| &r.curves.table).collect();
        let rows = compare(&[tables]);
        let mut tasks: Vec<&str> = rows.iter().map(|r| r.task.as_str()).collect();
        tasks.dedup();
        let side = s.side(runs);
        let fig = s.figure.as_ref().filter(|f| files.contains(&format!("{f}.svg")));
        let name = match fig {
            Some(f) => format!("<a href=\"{}.svg\">{}</a>", esc(f), esc(&s.label)),
            None => esc(&s.label),
        };
        let ids = if members.len() > 1 {
            let v: Vec<String> = members.iter().map(|r| esc(&r.st.id)).collect();
            format!("<br><span class=small>{}</span>", v.join(" "))
        } else {
            String::new()
        };
        let notes = notes_html(&members);
        let state = if members.len() > 1 {
            let mut counts: Vec<(String, usize)> = Vec::new();
            for r in &members {
                let st = r.st.state.as_str().to_string();
                match counts.iter_mut().find(|(s, _)| *s == st) {
                    Some(c) => c.1 += 1,
                    None => counts.push((st, 1)),
                }
            }
            counts.iter().map(|(s, n)| format!("{n} {s}")).collect::<Vec<_>>().join(", ")
        } else {
            members[0].st.state.as_str().to_string()
        };
        let step = distinct(members.iter().map(|r| format!("{}/{}", r.st.step, r.st.max_steps)).collect());
        let best = distinct(
            members
                .iter()
                .filter_map(|r| {
                    let t = &r.curves.table;
                    t.best_step.filter(|s| t.steps.contains_key(s)).or(t.latest_step())
                })
                .map(|s| s.to_string())
                .collect(),
        );
        let from = side.lineage(&label_of);
        let from = if from.is_empty() { "–".into() } else { esc(&from.join(", ")) };
        let head = |n: usize| {
            format!(
                "<td class=l rowspan={n}>{name}{ids}{notes}</td><td rowspan={n}>{}</td><td class=l rowspan={n}>{}</td>\
                 <td rowspan={n}>{}</td><td rowspan={n}>{}</td><td rowspan={n}>{}</td><td class=l rowspan={n}>{}</td>\
                 <td class=l rowspan={n}><code>{}</code></td>",
                members.len(),
                esc(&interval_words(&side)),
                esc(&state),
                esc(&step),
                esc(&best),
                from,
                esc(&members[0].st.mixture),
            )
        };
        if tasks.is_empty() {
            let _ = writeln!(h, "<tr>{}<td class=l colspan=7>no eval yet</td></tr>", head(1));
            continue;
        }
        for (i, task) in tasks.iter().enumerate() {
            let of_task: Vec<&CompareRow> = rows.iter().filter(|r| r.task == *task).collect();
            let pick = |name: &str| {
                of_task.iter().find(|r| r.row == name).map_or("–".into(), |r| with_ci(r.best[0], r.best_ci[0]))
            };
            let metric = of_task.first().map_or("", |r| r.metric.as_str());
            let _ = writeln!(
                h,
                "<tr>{}<td class=l>{} <span class=small>{}</span></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
                 <td>{}</td><td>{}</td></tr>",
                if i == 0 { head(tasks.len()) } else { String::new() },
                esc(&task.to_uppercase()),
                esc(metric),
                pick("English"),
                pick("seen avg"),
                pick("unseen avg"),
                pick("gap (seen−unseen)"),
                pick("ratio to English"),
                n_of(&of_task),
            );
        }
    }
    h.push_str("</table>\n");
}
