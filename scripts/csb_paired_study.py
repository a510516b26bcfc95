#!/usr/bin/env python3
"""Paired comparison of EP relaxations at equal step budgets (docs/csb_study.md).

Arms: the fixed-point map; gradient flow with dt tuned per budget; cSB with its
heavy-ball coefficients (alpha = a0 dt^2, mu = 1 - gamma dt; here dt = 1, so
alpha = a0 and mu = 1 - gamma) tuned per budget on a grid of the same size as
gradient flow's. Network 784-120-10 on FashionMNIST. Seed 0 tunes (its test
accuracy picks each arm's setting), seeds 1..S report, every arm on the same
seeds (same initial weights, same batch order). Then, on the weights each seed
reached with the fixed point at the paper's budget, every tuned arm's EP
gradient is compared with the implicit-differentiation gradient
(`eqprop gradcheck --checkpoint --split test`: test images, since random
inputs saturate a trained network's units).

Raw records go to OUT/tune.jsonl, OUT/eval.jsonl and OUT/gradcheck.jsonl as the
runs finish; a run already recorded is not run again, so an interrupted study
resumes. OUT/summary.md holds the tables.
"""
import argparse
import json
import math
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

BUDGETS = {"small": (3, 2), "paper": (20, 15), "third": (21, 7)}  # (free, nudged) steps
GF_GRID = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.85, 1.0]  # dt
CSB_GRID = [(alpha, mu) for alpha in (0.25, 0.5, 1.0) for mu in (0.2, 0.4, 0.6)]  # same size
T_CRIT_975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def arm_settings(arm, param):
    """--set overrides of one arm at one grid point."""
    if arm == "fixed_point":
        return ["dynamics.integrator=fixed_point"]
    if arm == "gradient_flow":
        return ["dynamics.integrator=gradient_flow", f"dynamics.dt={param}"]
    alpha, mu = param
    # dt = 1: v <- (1 - gamma) v + a0 F, x <- clip(x + v).
    return ["dynamics.integrator=csb", "dynamics.dt=1", f"dynamics.a0={alpha}", f"dynamics.gamma={1 - mu:.6g}"]


def grid(arm):
    return {"fixed_point": [None], "gradient_flow": GF_GRID, "csb": CSB_GRID}[arm]


def key(record):
    return (record["budget"], record["arm"], json.dumps(record["param"]), record["seed"])


def read_records(path):
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class Study:
    def __init__(self, args):
        self.args = args
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.runs = Path(args.runs)
        self.binary = str(ROOT / args.binary)

    def common(self, seed, budget):
        free, nudge = BUDGETS[budget]
        return ["seed=%d" % seed, "model.layers=[784,120,10]", f"training.epochs={self.args.epochs}",
                f"data.train_limit={self.args.train_limit}", f"data.test_limit={self.args.test_limit}",
                f"dynamics.t_free={free}", f"dynamics.t_nudge={nudge}"]

    def run_dir(self, budget, arm, param, seed):
        tag = "fp" if param is None else ("dt%g" % param if arm == "gradient_flow" else "a%g_m%g" % param)
        return self.runs / f"{budget}_{arm}_{tag}_seed{seed}"

    def train(self, budget, arm, param, seed, log):
        directory = self.run_dir(budget, arm, param, seed)
        sets = self.common(seed, budget) + arm_settings(arm, param)
        command = [self.binary, "train", "--config", str(ROOT / "configs/fashion_mnist.json"), "--device", "cpu",
                   "--out", str(directory), "--resume", "auto"]
        for s in sets:
            command += ["--set", s]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        metrics = read_records(directory / "metrics.jsonl")
        last = metrics[-1]
        record = {"budget": budget, "arm": arm, "param": param, "seed": seed, "epochs": last["epoch"],
                  "test_acc": last["test_acc"], "train_acc": last["train_acc"], "test_loss": last["test_loss"],
                  "best_test_acc": max(m["test_acc"] for m in metrics), "seconds": sum(m["seconds"] for m in metrics),
                  "free_energy_mean": last["free_energy_mean"], "checkpoint": str(directory), "sets": sets}
        with open(log, "a") as f:
            f.write(json.dumps(record) + "\n")
        print(f"{budget:6s} {arm:14s} {json.dumps(param):12s} seed {seed}: test {last['test_acc']:.4f}", flush=True)
        return record

    def run_all(self, jobs, log):
        done = {key(r) for r in read_records(log)}
        todo = [j for j in jobs if key({"budget": j[0], "arm": j[1], "param": j[2], "seed": j[3]}) not in done]
        with ThreadPoolExecutor(self.args.parallel) as pool:
            list(pool.map(lambda j: self.train(*j, log), todo))
        return read_records(log)

    def tune(self):
        jobs = [(b, a, p, 0) for b in BUDGETS for a in ("fixed_point", "gradient_flow", "csb") for p in grid(a)]
        records = self.run_all(jobs, self.out / "tune.jsonl")
        best = {}
        for r in records:
            k = (r["budget"], r["arm"])
            if k not in best or r["test_acc"] > best[k]["test_acc"]:
                best[k] = r
        return {k: (tuple(v["param"]) if isinstance(v["param"], list) else v["param"]) for k, v in best.items()}

    def evaluate(self, chosen):
        seeds = range(1, self.args.seeds + 1)
        jobs = [(b, a, chosen[(b, a)], s) for s in seeds for b in BUDGETS for a in ("fixed_point", "gradient_flow", "csb")]
        return self.run_all(jobs, self.out / "eval.jsonl")

    def gradcheck_one(self, seed, budget, arm, param):
        """EP gradient of one arm's setting on seed's fixed-point 20/15 weights against the exact gradient."""
        weights = self.run_dir("paper", "fixed_point", None, seed)
        free, nudge = BUDGETS[budget]
        command = [self.binary, "gradcheck", "--checkpoint", str(weights), "--device", "cpu",
                   "--samples", str(self.args.grad_samples), "--split", "test",
                   "--set", f"ep.beta={self.args.grad_beta}",
                   "--set", f"dynamics.t_free={free}", "--set", f"dynamics.t_nudge={nudge}"]
        for s in arm_settings(arm, param):
            command += ["--set", s]
        result = subprocess.run(command, capture_output=True, text=True)
        record = {"seed": seed, "budget": budget, "arm": arm, "param": param, "weights": str(weights),
                  "beta": self.args.grad_beta}
        if result.returncode == 0:
            report = json.loads(result.stdout)
            record.update({"cosine": report["overall"]["cosine"], "relative_error": report["overall"]["relative_error"],
                           "tensors": report["tensors"], "redrawn": report.get("samples_redrawn_near_a_kink")})
        else:
            record["error"] = result.stderr.strip()[-400:]
        return record

    def gradcheck_all(self, jobs, log):
        done = {key(r) for r in read_records(log)}
        todo = [j for j in jobs if key({"budget": j[1], "arm": j[2], "param": j[3], "seed": j[0]}) not in done]

        def one(job):
            record = self.gradcheck_one(*job)
            with open(log, "a") as f:
                f.write(json.dumps(record) + "\n")
            print(f"gradcheck seed {job[0]} {job[1]} {job[2]} {json.dumps(job[3])}: "
                  f"{record.get('cosine', record.get('error'))}", flush=True)

        with ThreadPoolExecutor(self.args.parallel) as pool:
            list(pool.map(one, todo))
        return read_records(log)

    def gradcheck(self, chosen):
        seeds = range(1, self.args.seeds + 1)
        jobs = [(s, b, a, chosen[(b, a)]) for s in seeds for b in BUDGETS for a in ("fixed_point", "gradient_flow", "csb")]
        return self.gradcheck_all(jobs, self.out / "gradcheck.jsonl")

    def gradcheck_grid(self):
        """Every grid point's gradient, whatever accuracy it trained to: how well each
        arm can relax at a budget, apart from the tuning."""
        seeds = range(1, self.args.seeds + 1)
        jobs = [(s, b, a, p) for s in seeds for b in BUDGETS for a in ("gradient_flow", "csb") for p in grid(a)]
        return self.gradcheck_all(jobs, self.out / "gradcheck_grid.jsonl")


def mean_ci(values):
    n = len(values)
    m = sum(values) / n
    if n < 2:
        return m, float("nan")
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1))
    return m, T_CRIT_975.get(n - 1, 1.96) * sd / math.sqrt(n)


def describe(param):
    if param is None:
        return "-"
    if isinstance(param, (list, tuple)):
        return "alpha=%g, mu=%g" % tuple(param)
    return "dt=%g" % param


def summary(study, chosen, evals, grads, grid_records):
    lines = ["# cSB paired study: results", "",
             f"784-120-10 on FashionMNIST, {study.args.epochs} epochs, train_limit={study.args.train_limit}, "
             f"test_limit={study.args.test_limit}; tuned on seed 0, reported on seeds 1..{study.args.seeds}.", ""]
    lines += ["## Tuned settings (seed 0 test accuracy)", "", "| budget (free/nudged) | gradient flow | cSB |",
              "|---|---|---|"]
    for b, (free, nudge) in BUDGETS.items():
        lines.append(f"| {b} ({free}/{nudge}) | {describe(chosen[(b, 'gradient_flow')])} | {describe(chosen[(b, 'csb')])} |")
    lines += ["", "## Test accuracy, seeds 1..%d (mean ± 95%% t-interval half-width, %%)" % study.args.seeds, "",
              "| budget | fixed point | gradient flow | cSB | cSB − GF (paired) | cSB − FP (paired) | GF − FP (paired) |",
              "|---|---|---|---|---|---|---|"]
    by = {(r["budget"], r["arm"], r["seed"]): r["test_acc"] * 100 for r in evals}
    seeds = list(range(1, study.args.seeds + 1))
    for b, (free, nudge) in BUDGETS.items():
        cells = []
        for arm in ("fixed_point", "gradient_flow", "csb"):
            m, h = mean_ci([by[(b, arm, s)] for s in seeds])
            cells.append(f"{m:.2f} ± {h:.2f}")
        for x, y in (("csb", "gradient_flow"), ("csb", "fixed_point"), ("gradient_flow", "fixed_point")):
            m, h = mean_ci([by[(b, x, s)] - by[(b, y, s)] for s in seeds])
            cells.append(f"{m:+.2f} [{m - h:+.2f}, {m + h:+.2f}]")
        lines.append(f"| {free}/{nudge} | " + " | ".join(cells) + " |")
    lines += ["", "Per seed (test %):", "", "| budget | arm | " + " | ".join(f"seed {s}" for s in seeds) + " |",
              "|---|---|" + "---|" * len(seeds)]
    for b in BUDGETS:
        for arm in ("fixed_point", "gradient_flow", "csb"):
            lines.append(f"| {b} | {arm} | " + " | ".join(f"{by[(b, arm, s)]:.2f}" for s in seeds) + " |")
    ok = [g for g in grads if "cosine" in g]
    if grads:
        lines += ["", f"## EP gradient against the implicit gradient (beta = {study.args.grad_beta}, "
                  f"the first {study.args.grad_samples} usable test images, weights: each seed's fixed-point 20/15 checkpoint)", "",
                  "| budget | fixed point | gradient flow | cSB |", "|---|---|---|---|"]
        for b, (free, nudge) in BUDGETS.items():
            cells = []
            for arm in ("fixed_point", "gradient_flow", "csb"):
                values = [g["cosine"] for g in ok if g["budget"] == b and g["arm"] == arm]
                if values:
                    m, h = mean_ci(values)
                    cells.append(f"{m:.4f} ± {h:.4f} (n={len(values)})")
                else:
                    cells.append("n/a")
            lines.append(f"| {free}/{nudge} | " + " | ".join(cells) + " |")
        failed = [g for g in grads if "cosine" not in g]
        if failed:
            lines += ["", f"{len(failed)} gradchecks failed; first error: {failed[0]['error']}"]
    grid_ok = [g for g in grid_records if "cosine" in g]
    if grid_ok:
        lines += ["", "## EP gradient cosine at every grid point (same weights and images; mean over seeds)", "",
                  "| budget | arm | setting | cosine | relative error |", "|---|---|---|---|---|"]
        for b, (free, nudge) in BUDGETS.items():
            for arm in ("gradient_flow", "csb"):
                for p in grid(arm):
                    values = [g for g in grid_ok if g["budget"] == b and g["arm"] == arm
                              and json.dumps(g["param"]) == json.dumps(p)]
                    if values:
                        c = sum(g["cosine"] for g in values) / len(values)
                        e = sum(g["relative_error"] for g in values) / len(values)
                        lines.append(f"| {free}/{nudge} | {arm} | {describe(p)} | {c:.4f} | {e:.3f} |")
    text = "\n".join(lines) + "\n"
    (study.out / "summary.md").write_text(text)
    print(text)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-limit", type=int, default=0)
    parser.add_argument("--test-limit", type=int, default=0)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--grad-samples", type=int, default=8)
    parser.add_argument("--grad-beta", type=float, default=0.01)
    parser.add_argument("--skip-gradcheck", action="store_true")
    parser.add_argument("--binary", default="build/eqprop")
    parser.add_argument("--out", default=str(ROOT / "perf/results/csb_paired"))
    parser.add_argument("--runs", default=str(ROOT / "runs/csb_paired"))
    args = parser.parse_args()
    study = Study(args)
    chosen = study.tune()
    evals = study.evaluate(chosen)
    grads = [] if args.skip_gradcheck else study.gradcheck(chosen)
    grid_records = [] if args.skip_gradcheck else study.gradcheck_grid()
    summary(study, chosen, evals, grads, grid_records)


if __name__ == "__main__":
    sys.exit(main())
