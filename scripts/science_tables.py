#!/usr/bin/env python3
"""Rebuild the README's science tables from a runs root, so that every claim can be checked.

    scripts/science_tables.py RUNS_ROOT [--mixscope PATH] [--best | --latest]

It asks mixscope itself for every number (`ls --json`, `report --sweep`, `compare --json`) and
prints Markdown: the demo's two arms, the paper sweep (score vs N per task, and N = 400 against
N = 0), the scripts sweep, and the model-size axis, each only when the runs root holds it.
Values are group means over seeds with 95 % t-intervals across them (K and n printed); deltas
are Welch intervals, `*` where mixscope marks them supported after Holm's adjustment.
"""

import argparse
import collections
import csv
import json
import math
import os
import struct
import subprocess
import sys
import tempfile

UNSEEN = ["ar", "ko", "pt"]
TASKS = [("mr", "MR"), ("sm", "SM"), ("if", "IF")]


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr}")
    return p.stdout


class Mixscope:
    def __init__(self, exe, root):
        self.exe, self.root = exe, root

    def __call__(self, *args):
        return run([*self.exe, *args, "--runs", self.root])

    def ls(self):
        return json.loads(self("ls", "--json"))

    def compare(self, a, b):
        return json.loads(self("compare", a, b, "--json"))


def f2(x):
    return f"{x:.2f}".replace("0.", ".", 1) if x >= 0 else f"-{-x:.2f}".replace("0.", ".", 1)


def signed(x):
    return ("+" if x >= 0 else "−") + f"{abs(x):.2f}".replace("0.", ".", 1)


def cell(mean, lo, hi):
    return f"{f2(mean)} [{f2(lo)},{f2(hi)}]"


def delta(d, marked):
    return f"{signed(d['value'])}{'*' if marked else ''} [{signed(d['lo'])},{signed(d['hi'])}]"


def groups_of_sweep(runs, name):
    """A sweep's groups: {point without seed (tuple of items): (group id, K, state counts)}."""
    out = {}
    for r in runs:
        sw = r.get("sweep")
        if not sw or sw["name"] != name:
            continue
        point = tuple(sorted((k, v) for k, v in sw["point"].items() if k != "seed"))
        g = out.setdefault(point, {"group": r.get("group") or r["id"], "k": 0, "finished": 0})
        g["k"] += 1
        g["finished"] += r["state"] == "finished"
    return out


def whole(g):
    return g["finished"] == g["k"]


def rows_by(cmp, at):
    """{(task, row): (A mean, A ci, B mean, B ci, delta, marked, k, n)} of a two-sided compare."""
    out = {}
    for r in cmp["rows"]:
        out[(r["task"], r["row"])] = (
            r[at][0],
            r[f"{at}_ci"][0],
            r[at][1],
            r[f"{at}_ci"][1],
            r[f"{at}_delta"][0],
            r[f"{at}_marked"][0],
            r["k"],
            r["n"],
        )
    return out


def side_note(cmp):
    s = cmp["sides"]
    return "; ".join(f"{x['label']} (seeds {' '.join(str(v) for v in x.get('seeds', []))})" for x in s)


def compare_table(cmp, at, rows, title):
    """A table of the compare's rows: A, B and B − A, per task."""
    got = rows_by(cmp, at)
    print(f"\n{title}\n")
    print(f"| task | row | A | B | B − A |")
    print("|---|---|---|---|---|")
    for t, tn in TASKS:
        for row, shown in rows:
            if (t, row) not in got:
                continue
            a, aci, b, bci, d, m, _, _ = got[(t, row)]
            print(f"| {tn} | {shown} | {cell(a, *aci)} | {cell(b, *bci)} | {delta(d, m)} |")


AGG_ROWS = [("English", "English"), ("seen avg", "seen"), ("unseen avg", "unseen")] + [
    (l, f"{l} (unseen)") for l in UNSEEN
]


def demo(ms, runs, at):
    names = collections.Counter(r.get("name") for r in runs if not r.get("sweep"))
    if not (names.get("demo-en") and names.get("demo-ml40")):
        return
    cmp = ms.compare("demo-en", "demo-ml40")
    k = [s.get("seeds") for s in cmp["sides"]]
    print("## The demo's two arms: English only (A) vs 40 % multilingual (B)")
    print(f"\n{side_note(cmp)}. {cmp['intervals']}; at the {at} checkpoint.")
    compare_table(cmp, at, AGG_ROWS, f"K = {len(k[0])} and {len(k[1])} seeds; n = 64 per task and language")


def paper(ms, runs, at, out):
    gs = groups_of_sweep(runs, "paper")
    if not gs:
        return
    sweep_id = next(r["sweep"]["id"] for r in runs if r.get("sweep", {}) and r["sweep"]["name"] == "paper")
    ms("report", "--sweep", sweep_id, "--out", out)
    path = os.path.join(out, f"sweep-{sweep_id}.csv")
    table = collections.defaultdict(dict)
    ks = collections.defaultdict(set)
    with open(path) as f:
        for r in csv.DictReader(f):
            key = (r["task"], r["series"], r["group"])
            table[key][int(r["n"])] = cell(float(r["mean"]), float(r["ci95_lo"]), float(r["ci95_hi"]))
            ks[key].add(f"{r['k']} {r['interval']}")
    done = sum(whole(g) for g in gs.values())
    print(f"\n## The paper sweep ({sweep_id}): score vs N per task, {done} of {len(gs)} points whole")
    print("\nEach cell: the mean over the point's seeds at each run's best checkpoint, 95 % t-interval across them.\n")
    ns = sorted({n for v in table.values() for n in v})
    print("| task, series | group | K | " + " | ".join(f"N = {n}" for n in ns) + " |")
    print("|---|---|---|" + "---|" * len(ns))
    for t, tn in TASKS:
        for series in sorted({k[1] for k in table if k[0] == t}, key=lambda s: (s.count("+"), s)):
            label = f"{tn} alone" if series == f"tasks={t}" else f"{tn} in {series.split('=')[1].upper()}"
            for grp in ["english", "seen", "unseen"]:
                row = table.get((t, series, grp))
                if not row:
                    continue
                k = "/".join(sorted(x.split()[0] for x in ks[(t, series, grp)]))
                print(f"| {label} | {grp} | {k} | " + " | ".join(row.get(n, "–") for n in ns) + " |")
                label = ""
    # N = 400 against N = 0, per task series: the deltas with Welch intervals.
    by = {dict(p).get("tasks"): {} for p in gs}
    for p, g in gs.items():
        d = dict(p)
        by[d.get("tasks")][d.get("n")] = g
    print(f"\nN = 400 (B) against N = 0 (A), at the {at} checkpoint:")
    for tasks, points in sorted(by.items()):
        lo, hi = points.get("0"), points.get("400")
        if not (lo and hi and whole(lo) and whole(hi)):
            print(f"\n(tasks={tasks}: not every seed of N = 0 and N = 400 has finished)")
            continue
        cmp = ms.compare(lo["group"], hi["group"])
        compare_table(cmp, at, AGG_ROWS, f"tasks={tasks}: {side_note(cmp)}")


def scripts_sweep(ms, runs, at):
    gs = groups_of_sweep(runs, "scripts")
    if not gs:
        return
    print("\n## The scripts sweep: Latin-only (es fr) vs non-Latin-only (ja zh) additions")
    rows = [("Latin avg", "Latin"), ("non-Latin avg", "non-Latin")] + [(l, f"{l} (unseen)") for l in UNSEEN]
    by = collections.defaultdict(dict)
    for p, g in gs.items():
        d = dict(p)
        by[d.get("data.seen")][d.get("n")] = g
    for seen, points in sorted(by.items()):
        ns = sorted(points, key=int)
        lo, hi = points[ns[0]], points[ns[-1]]
        if not (whole(lo) and whole(hi)):
            print(f"\n(data.seen={seen}: not every seed of N = {ns[0]} and N = {ns[-1]} has finished)")
            continue
        cmp = ms.compare(lo["group"], hi["group"])
        compare_table(cmp, at, rows, f"data.seen={seen}: N = {ns[-1]} (B) against N = {ns[0]} (A); {side_note(cmp)}")


def t_quantile(p, df):
    """The p-quantile of Student's t with df degrees of freedom (df may be fractional, as
    Welch–Satterthwaite's is): the regularized incomplete beta by its continued fraction, then
    bisection. Enough for a 95 % interval; no SciPy needed."""

    def betacf(a, b, x):
        c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
        d = 1.0 / (d if abs(d) > 1e-300 else 1e-300)
        h = d
        for m in range(1, 300):
            for num in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                        -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
                d = 1.0 + num * d
                d = 1.0 / (d if abs(d) > 1e-300 else 1e-300)
                c = 1.0 + num / c if abs(1.0 + num / c) > 1e-300 else 1e-300
                h *= d * c
        return h

    def ibeta(a, b, x):
        if x <= 0.0 or x >= 1.0:
            return max(0.0, min(1.0, x))
        lbt = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log(1 - x)
        if x < (a + 1) / (a + b + 2):
            return math.exp(lbt) * betacf(a, b, x) / a
        return 1.0 - math.exp(lbt) * betacf(b, a, 1 - x) / b

    def cdf(t):
        tail = 0.5 * ibeta(df / 2, 0.5, df / (df + t * t))
        return 1.0 - tail if t > 0 else tail

    lo, hi = -1e3, 1e3
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cdf(mid) < p else (lo, mid)
    return (lo + hi) / 2


def contrast(parts):
    """Σ sign·mean over independent groups given as (sign, mean, sd, k), with its 95 % Welch
    interval (Satterthwaite's degrees of freedom): the difference of two gains."""
    value = sum(s * m for s, m, _, _ in parts)
    var = [sd * sd / k for _, _, sd, k in parts]
    se = math.sqrt(sum(var))
    if se == 0:
        return value, value, value
    df = se**4 / sum(v * v / (k - 1) for v, (_, _, _, k) in zip(var, parts) if v > 0)
    h = t_quantile(0.975, df) * se
    return value, value - h, value + h


def params_of(root, run, step):
    """The parameter count of a base run's checkpoint, from its safetensors header."""
    path = os.path.join(root, run, "checkpoints", str(int(step)), "model.safetensors")
    with open(path, "rb") as f:
        header = json.loads(f.read(struct.unpack("<Q", f.read(8))[0]))
    return sum(math.prod(v["shape"]) for k, v in header.items() if k != "__metadata__")


def size_axis(ms, runs, at, out):
    gs = groups_of_sweep(runs, "size")
    if not gs:
        return
    print("\n## The model-size axis: 40 % multilingual (B) against English only (A), per base")
    by = collections.defaultdict(dict)
    for p, g in gs.items():
        d = dict(p)
        by[d.get("init.config")][d.get("mixture")] = g
    parent = {}
    for r in runs:
        sw = r.get("sweep")
        if sw and sw["name"] == "size" and r.get("parent"):
            parent[sw["point"].get("init.config")] = (r["parent"], r["fork_step"])
    sizes, cmps = {}, {}
    for base, arms in by.items():
        en, ml = arms.get("multilingual=0"), arms.get("multilingual=0.4")
        if not (en and ml and whole(en) and whole(ml)):
            print(f"\n({base}: not every seed of both arms has finished)")
            continue
        sizes[base] = params_of(ms.root, *parent[base])
        cmps[base] = (en["group"], ml["group"], ms.compare(en["group"], ml["group"]))
    order = sorted(sizes, key=sizes.get)
    for base in order:
        compare_table(cmps[base][2], at, AGG_ROWS, f"{base} ({sizes[base] / 1e6:.1f} M parameters): {side_note(cmps[base][2])}")
    if not order:
        return
    # One table of the gains per size, then the largest base's gain against the smallest's.
    rows = [("English", "English"), ("seen avg", "seen"), ("unseen avg", "unseen")]
    print(f"\nB − A per base, at the {at} checkpoint (Welch intervals; `*` supported after Holm's adjustment):\n")
    print("| task | base | " + " | ".join(shown for _, shown in rows) + " |")
    print("|---|---|" + "---|" * len(rows))
    for t, tn in TASKS:
        for base in order:
            got = rows_by(cmps[base][2], at)
            cells = [delta(got[(t, r)][4], got[(t, r)][5]) if (t, r) in got else "–" for r, _ in rows]
            print(f"| {tn} | {sizes[base] / 1e6:.1f} M | " + " | ".join(cells) + " |")
    if len(order) < 2:
        return
    sweep_id = next(r["sweep"]["id"] for r in runs if r.get("sweep", {}) and r["sweep"]["name"] == "size")
    ms("report", "--sweep", sweep_id, "--out", out)
    stats = {}
    with open(os.path.join(out, "groups.csv")) as f:
        for r in csv.DictReader(f):
            if r["at"] == at and r["mean"] and r["seed_sd"]:
                stats[(r["group"], r["task"], r["row"])] = (float(r["mean"]), float(r["seed_sd"]), int(r["k"]))
    small, large = order[0], order[-1]
    print(f"\nThe gain at {sizes[large] / 1e6:.1f} M minus the gain at {sizes[small] / 1e6:.1f} M "
          "(a difference of differences over four groups of seeds, 95 % Welch interval):\n")
    print("| task | " + " | ".join(shown for _, shown in rows) + " |")
    print("|---|" + "---|" * len(rows))
    for t, tn in TASKS:
        cells = []
        for r, _ in rows:
            keys = [(cmps[large][1], 1), (cmps[large][0], -1), (cmps[small][1], -1), (cmps[small][0], 1)]
            got = [stats.get((g, t, r)) for g, _ in keys]
            if None in got:
                cells.append("–")
                continue
            v, lo, hi = contrast([(sign, *x) for (_, sign), x in zip(keys, got)])
            cells.append(f"{signed(v)} [{signed(lo)},{signed(hi)}]")
        print(f"| {tn} | " + " | ".join(cells) + " |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs_root")
    ap.add_argument("--mixscope", default=None, help="the mixscope binary (default: cargo run --release)")
    at = ap.add_mutually_exclusive_group()
    at.add_argument("--latest", action="store_true", help="values at each run's latest step (default: best)")
    a = ap.parse_args()
    here = os.path.dirname(os.path.abspath(__file__))
    exe = [a.mixscope] if a.mixscope else ["cargo", "run", "-q", "--release", "--manifest-path",
                                           os.path.join(here, "..", "Cargo.toml"), "--"]
    ms = Mixscope(exe, a.runs_root)
    where = "latest" if a.latest else "best"
    runs = ms.ls()
    with tempfile.TemporaryDirectory() as out:
        demo(ms, runs, where)
        paper(ms, runs, where, out)
        scripts_sweep(ms, runs, where)
        size_axis(ms, runs, where, out)


if __name__ == "__main__":
    main()
