"""Detection benchmark: do the data-quality defaults catch every material change at every sample size,
and stay silent on clean windows and on immaterial changes?

    .venv/bin/python -m benchmarks.detection [--training-rows 100000] [--sizes 1000,10000,100000,1000000]
                                             [--seeds 1000:100,10000:40,100000:10,1000000:4] [--quick]

A generator of a realistic 12-column tabular set (each column independent of the others, so a change to
one column leaves the others' distributions alone):

* normal `score` N(600, 50); lognormal `income` (log-mean 10.5, log-sd 0.8); lognormal `balance`
  (log-sd 1.2);
* bounded `utilization` Beta(2, 5) with 2 % missing values, bounded `ratio` U(0, 1);
* integer `age` U{18..89}, integer `tenure` Poisson(24), integer `clicks` negative binomial (skewed);
* skewed categoricals `region` (8 values, the largest 26 %) and `channel` (3 values), `plan` (5 values,
  1 % missing);
* long-tailed categorical `product`: 50 common codes (Zipf shares) plus 40 rare codes of share 1e-5
  each, most of which a training set of 100,000 rows happens not to contain.

A baseline is suggested from one training draw (modelwatch's defaults: `suggest_constraints`). Windows of
each size are fresh draws (seeded), profiled in partitions of at most 100,000 rows and merged, as a
monitoring execution profiles capture files; then checked (`evaluate_data_quality`). Per size it prints the
share of clean windows with any violation, and for each injected change the share of windows flagged on
exactly the changed column (material changes) or with any violation (immaterial ones, which must raise
nothing). The same windows are also checked against the same baseline under SageMaker's settings (the
file-level Robust and LInfinity methods, domain_content_threshold 1.0), side by side.

Targets: no alarm on any clean window; every material change flagged on exactly its column at every size;
no alarm for the immaterial changes. The markdown table goes to stdout and to
benchmarks/results/detection.md; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from benchmarks.measure import ROOT, log, machine, machine_section, write_results
from modelwatch.tasks.constraints import evaluate_data_quality, suggest_constraints
from modelwatch.tasks.documents import Check, Constraints, Statistics
from modelwatch.tasks.profile import merge_profiles, profile_columns, profile_table, to_statistics

PARTITION = 100_000
REGIONS = ["north", "south", "east", "west", "central", "coast", "hills", "islands"]
REGION_SHARES = np.array([0.26, 0.22, 0.16, 0.12, 0.09, 0.07, 0.05, 0.03])
COMMON = 50
RARE = 40
RARE_SHARE = 1e-5


def _product_shares() -> tuple[list[str], np.ndarray]:
    zipf = 1 / np.arange(1, COMMON + 1) ** 1.1
    common = zipf / zipf.sum() * (1 - RARE * RARE_SHARE)
    codes = [f"P{i:03d}" for i in range(COMMON)] + [f"R{i:03d}" for i in range(RARE)]
    return codes, np.concatenate([common, np.full(RARE, RARE_SHARE)])


PRODUCTS, PRODUCT_SHARES = _product_shares()


def draw(n: int, seed: int) -> dict[str, np.ndarray]:
    """One sample of n rows of the 12 columns (NaN or None for a missing value)."""
    rng = np.random.default_rng(seed)
    utilization = rng.beta(2, 5, n)
    utilization[rng.random(n) < 0.02] = np.nan
    plan = rng.choice(np.array(["basic", "plus", "pro", "team", "enterprise"], dtype=object), n,
                      p=[0.45, 0.25, 0.15, 0.1, 0.05])
    plan[rng.random(n) < 0.01] = None
    return {
        "score": rng.normal(600, 50, n),
        "income": rng.lognormal(10.5, 0.8, n),
        "balance": rng.lognormal(7.0, 1.2, n),
        "utilization": utilization,
        "ratio": rng.random(n),
        "age": rng.integers(18, 90, n),
        "tenure": rng.poisson(24, n),
        "clicks": rng.negative_binomial(2, 0.3, n),
        "region": rng.choice(np.array(REGIONS, dtype=object), n, p=REGION_SHARES),
        "channel": rng.choice(np.array(["web", "app", "store"], dtype=object), n, p=[0.6, 0.3, 0.1]),
        "plan": plan,
        "product": rng.choice(np.array(PRODUCTS, dtype=object), n, p=PRODUCT_SHARES),
    }


def _arrow(values: np.ndarray) -> pa.Array:
    if values.dtype == object:
        return pa.array(values.tolist(), pa.string())
    return pa.array(values, from_pandas=True)


def profile_window(columns: dict[str, np.ndarray], n: int):
    """Profiled in partitions of at most PARTITION rows, merged: as an execution profiles files."""
    parts = []
    for i, start in enumerate(range(0, n, PARTITION)):
        stop = min(n, start + PARTITION)
        parts.append(profile_columns({k: _arrow(v[start:stop]) for k, v in columns.items()},
                                     stop - start, seed=i))
    return merge_profiles(parts)


# ---- injected changes: (name, column, material?, how) ----

Change = Callable[[dict[str, np.ndarray], np.random.Generator], None]


@dataclass(frozen=True)
class Injection:
    name: str
    column: str
    material: bool
    apply: Change


def _rows(rng: np.random.Generator, mask: np.ndarray, share: float) -> np.ndarray:
    """A random share of the rows where mask holds."""
    where = np.flatnonzero(mask)
    return rng.choice(where, int(round(share * where.size)), replace=False)


def _spread(factor: float) -> Change:
    def apply(cols: dict[str, np.ndarray], _: np.random.Generator) -> None:
        cols["score"] = 600 + (cols["score"] - 600) * factor
    return apply


def _log_spread(factor: float) -> Change:
    def apply(cols: dict[str, np.ndarray], _: np.random.Generator) -> None:
        cols["income"] = np.exp(10.5 + (np.log(cols["income"]) - 10.5) * factor)
    return apply


def _shift(sds: float) -> Change:
    def apply(cols: dict[str, np.ndarray], _: np.random.Generator) -> None:
        cols["score"] = cols["score"] + sds * 50
    return apply


def _region_share(points: float) -> Change:
    def apply(cols: dict[str, np.ndarray], rng: np.random.Generator) -> None:
        others = cols["region"] != "north"
        cols["region"][_rows(rng, others, points / (1 - REGION_SHARES[0]))] = "north"
    return apply


def _new_category(cols: dict[str, np.ndarray], rng: np.random.Generator) -> None:
    cols["region"][_rows(rng, np.ones(cols["region"].size, bool), 0.05)] = "atlantis"


def _more_missing(cols: dict[str, np.ndarray], rng: np.random.Generator) -> None:
    present = ~np.isnan(cols["utilization"])
    cols["utilization"][_rows(rng, present, 0.13 / 0.98)] = np.nan


def _strings(cols: dict[str, np.ndarray], rng: np.random.Generator) -> None:
    text = cols["tenure"].astype(str).astype(object)
    text[_rows(rng, np.ones(text.size, bool), 0.20)] = "n/a"
    cols["tenure"] = text


def _drop(cols: dict[str, np.ndarray], _: np.random.Generator) -> None:
    del cols["ratio"]


INJECTIONS = [
    Injection("mean shift 0.5 sd (normal)", "score", True, _shift(0.5)),
    Injection("spread x1.5 (normal)", "score", True, _spread(1.5)),
    Injection("spread x0.67 (normal)", "score", True, _spread(0.67)),
    Injection("spread x1.5 (lognormal, log space)", "income", True, _log_spread(1.5)),
    Injection("spread x0.67 (lognormal, log space)", "income", True, _log_spread(0.67)),
    Injection("new category on 5 % of rows", "region", True, _new_category),
    Injection("category share +15 points (26 -> 41 %)", "region", True, _region_share(0.15)),
    Injection("missing 2 % -> 15 %", "utilization", True, _more_missing),
    Injection("20 % of a numeric column turned to strings", "tenure", True, _strings),
    Injection("dropped column", "ratio", True, _drop),
    Injection("mean shift 0.02 sd (immaterial)", "score", False, _shift(0.02)),
    Injection("category share +1 point (immaterial)", "region", False, _region_share(0.01)),
]


def sagemaker_settings(constraints: Constraints) -> Constraints:
    """The same baseline under SageMaker's settings: the file's Robust/LInfinity for every feature and
    a domain_content_threshold of 1.0."""
    plain = constraints.model_copy(deep=True)
    for feature in plain.features:
        feature.drift_methods = None
        feature.monitoring_config_overrides = None
    return plain


def severity(check: Check) -> float:
    """How far a check is from firing: value over threshold for an upper bound, shortfall over
    allowed shortfall for a lower bound; above 1 it fails."""
    if check.value is None or check.threshold is None:
        return 0.0 if check.passed else math.inf
    if check.passes == "at most":
        return check.value / check.threshold if check.threshold > 0 else \
            (0.0 if check.passed else math.inf)
    if check.passes == "at least" and check.threshold < 1:
        return max(0.0, 1 - check.value) / (1 - check.threshold)
    return 0.0 if check.passed else math.inf


def alarms(constraints: Constraints, baseline: Statistics, profile, n: int,
           column: str | None = None) -> tuple[set[str], float]:
    """The columns (or "" for the window) with at least one failed check, and the largest severity
    of the checks of `column` (of every column when None)."""
    checks = evaluate_data_quality(constraints, baseline, profile, records_read=n,
                                   records_malformed=0)
    worst = max((severity(c) for c in checks if column is None or c.subject == column),
                default=0.0)
    return {c.subject for c in checks if not c.passed}, worst


def run(training_rows: int, sizes: list[int], seeds: dict[int, int]) -> str:
    started = time.perf_counter()
    training = draw(training_rows, seed=1)
    table = pa.table({k: _arrow(v) for k, v in training.items()})
    baseline = to_statistics(profile_table(table))
    ours = suggest_constraints(baseline)
    theirs = sagemaker_settings(ours)
    unseen = sorted(set(PRODUCTS) - set(next(
        f for f in ours.features if f.name == "product").string_constraints.domains))
    log(f"baseline of {training_rows:,} rows; {len(unseen)} product codes it did not see")
    rows: dict[str, dict[int, tuple[str, str]]] = {}
    margins: dict[str, dict[int, float]] = {}
    failures: list[str] = []
    for n in sizes:
        count = seeds[n]
        clean = [0, 0]
        closest = 0.0
        for s in range(count * 2):
            profile = profile_window(draw(n, seed=10_000 + n + s), n)
            for i, constraints in enumerate((ours, theirs)):
                flagged, worst = alarms(constraints, baseline, profile, n)
                clean[i] += bool(flagged)
                if i == 0:
                    closest = max(closest, worst)
                    if flagged:
                        failures.append(f"clean window n={n} seed={s}: {sorted(flagged)}")
        label = "clean windows: no alarm"
        rows.setdefault(label, {})[n] = tuple(f"{count * 2 - c}/{count * 2}" for c in clean)
        margins.setdefault(label, {})[n] = closest
        log(f"n={n:,}: clean windows done ({time.perf_counter() - started:.0f} s)")
        for inj in INJECTIONS:
            hit = [0, 0]
            # Material: the weakest of the windows' strongest signals on the changed column;
            # immaterial: the strongest signal anywhere.
            margin = math.inf if inj.material else 0.0
            for s in range(count):
                columns = draw(n, seed=20_000 + n + s)
                inj.apply(columns, np.random.default_rng(s))
                profile = profile_window(columns, n)
                for i, constraints in enumerate((ours, theirs)):
                    flagged, worst = alarms(constraints, baseline, profile, n,
                                            inj.column if inj.material else None)
                    ok = flagged == {inj.column} if inj.material else not flagged
                    hit[i] += ok
                    if i == 0:
                        margin = min(margin, worst) if inj.material else max(margin, worst)
                        if not ok:
                            failures.append(f"{inj.name} n={n} seed={s}: flagged {sorted(flagged)}")
            label = (f"{inj.name}: flagged on `{inj.column}` only" if inj.material
                     else f"{inj.name}: no alarm")
            rows.setdefault(label, {})[n] = tuple(f"{h}/{count}" for h in hit)
            margins.setdefault(label, {})[n] = margin
        log(f"n={n:,}: changes done ({time.perf_counter() - started:.0f} s)")
    header = "| case | " + " | ".join(f"{n:,} rows" for n in sizes) + " |"
    lines = [
        "# Detection benchmark", "",
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `python -m benchmarks.detection`;"
        f" training set {training_rows:,} rows (12 columns; {len(unseen)} of the {RARE} rare product "
        "codes absent from it); windows profiled in partitions of "
        f"{PARTITION:,} rows and merged. Each cell: windows meeting the target / windows, "
        "**modelwatch defaults** then (SageMaker settings on the same windows).", "",
        header, "|" + "---|" * (len(sizes) + 1),
    ]
    for label, by_size in rows.items():
        cells = [f"**{by_size[n][0]}** ({by_size[n][1]})" for n in sizes]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "Margins (modelwatch defaults): a check's value against its threshold, 1 the point "
              "where it fires (value/threshold for an upper bound, shortfall/allowed shortfall "
              "for a lower one; inf: a missing column). Clean windows and immaterial changes: the "
              "largest over every check of every window (below 1 is silent); material changes: "
              "over windows, the smallest of the changed column's largest (above 1 is caught).",
              "", header, "|" + "---|" * (len(sizes) + 1)]
    for label, by_size in margins.items():
        lines.append(f"| {label} | " + " | ".join(f"{by_size[n]:.2f}" for n in sizes) + " |")
    lines += ["", "Targets met: " + ("**yes**" if not failures else "**NO**"), ""]
    lines += [f"- {f}" for f in failures[:40]]
    lines += ["", f"Total {time.perf_counter() - started:.0f} s.", ""]
    lines += machine_section(machine(("numpy", "pyarrow")))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--training-rows", type=int, default=100_000)
    parser.add_argument("--sizes", default="1000,10000,100000,1000000")
    parser.add_argument("--seeds", default="1000:100,10000:40,100000:10,1000000:4",
                        help="windows per change for each size (clean windows: twice as many)")
    parser.add_argument("--quick", action="store_true", help="sizes 1,000 and 10,000, 5 seeds")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "detection.md")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    seeds = {int(k): int(v) for k, v in (p.split(":") for p in args.seeds.split(","))}
    if args.quick:
        sizes, seeds = [1000, 10000], {1000: 5, 10000: 5}
    write_results(args.out, run(args.training_rows, sizes, {n: seeds.get(n, 3) for n in sizes}))


if __name__ == "__main__":
    main()
