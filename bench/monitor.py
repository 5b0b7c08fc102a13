"""Time and peak memory of kubeline's drift check against Evidently alone, on the same frames.

    python bench/monitor.py [--rows 1000000] [--reference-rows 100000] [--rounds 1]

Builds the frames once with kubeline's own generator and feature code: a reference of about
``--reference-rows`` rows (the generator's tickers over ten years) and a current window of about
``--rows`` rows from other tickers with a regime change planted half way (``drift_from``), both
with the 14 default features and a prediction column from a ridge regression fitted on the
reference (any fitted model would do: the prediction is one more column to compare). Then, each
in a fresh process so that one's memory does not count against the other:

* evidently: ``Report([DataDriftPreset(columns, method, threshold)]).run(current, reference)``
  on the whole window, as a user would call it;
* kubeline: what ``kubeline monitor`` does with the same frames: ``sample_window`` (a seeded
  sample of ``DRIFT_SAMPLE_ROWS`` when the window is larger), then ``drift_report``.

Printed and written to bench/results/monitor-<time>.json: seconds of the comparison (frames
already loaded), the process's peak RSS and its RSS before the comparison, the largest
difference between the two runs' per-column scores, and whether the same columns drifted.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
METHOD, THRESHOLD = "wasserstein", 0.3  # the run config's defaults (kubeline.runconfig)
TRADING_DAYS_PER_YEAR = 252


def _rss_mb() -> float:
    with Path("/proc/self/status").open(encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def build_frames(folder: Path, rows: int, reference_rows: int) -> dict[str, Any]:
    import polars as pl
    from sklearn.linear_model import Ridge

    from kubeline import features as feature_engine
    from kubeline.data.generate import generate
    from kubeline.data.schema import TARGET

    years = 10.0
    per_ticker = int(years * TRADING_DAYS_PER_YEAR)

    def table(tickers: int, seed: int, drift_from: date | None) -> tuple[pl.DataFrame, list[str]]:
        bars = generate(tickers=tickers, years=years, seed=seed, drift_from=drift_from)
        built, plan = feature_engine.build_polars(bars)
        return built.drop_nulls([*plan.features, TARGET]), plan.features

    # Each ticker loses its first bars to the feature windows: ask for 10% more, then cut.
    def tickers_for(wanted: int) -> int:
        return max(1, math.ceil(wanted * 1.1 / per_ticker))

    reference, names = table(tickers_for(reference_rows), 1, None)
    reference = reference.head(reference_rows)
    current, _ = table(tickers_for(rows), 2, date(2005, 1, 3))
    current = current.head(rows)
    model = Ridge().fit(reference.select(names).to_numpy(), reference[TARGET].to_numpy())
    for name, frame in (("reference", reference), ("current", current)):
        scored = frame.select(names).with_columns(
            pl.Series("prediction", model.predict(frame.select(names).to_numpy()))
        )
        scored.write_parquet(folder / f"{name}.parquet")
    return {"features": names, "reference_rows": reference.height, "rows": current.height}


def worker(kind: str, folder: Path, features: list[str]) -> dict[str, Any]:
    import pandas as pd

    reference = pd.read_parquet(folder / "reference.parquet")
    current = pd.read_parquet(folder / "current.parquet")
    columns = [*features, "prediction"]
    before = _rss_mb()
    started = time.perf_counter()
    if kind == "evidently":
        from evidently import DataDefinition, Dataset, Report
        from evidently.presets import DataDriftPreset

        definition = DataDefinition(numerical_columns=columns)
        snapshot = Report(
            [DataDriftPreset(columns=columns, method=METHOD, threshold=THRESHOLD)],
            include_tests=True,
        ).run(
            Dataset.from_pandas(current[columns], data_definition=definition),
            Dataset.from_pandas(reference[columns], data_definition=definition),
        )
        found = snapshot.dict()
        scores = {
            m["config"]["column"]: float(m["value"])
            for m in found["metrics"]
            if m.get("config", {}).get("type", "").endswith(":ValueDrift")
        }
        compared = len(current)
    else:
        from kubeline.monitor.drift import drift_report, sample_window

        window = sample_window(current)
        result, _ = drift_report(
            reference, window, features, "prediction", method=METHOD, threshold=THRESHOLD
        )
        scores = {c.column: c.score for c in [*result.features, result.prediction]}
        compared = len(window)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {
        "kind": kind,
        "seconds": round(seconds, 2),
        "rss_before_mb": round(before),
        "peak_rss_mb": round(peak),
        "compared_rows": compared,
        "scores": scores,
    }


def run_worker(kind: str, folder: Path, features: list[str]) -> dict[str, Any]:
    args = [sys.executable, __file__, "--worker", kind, "--frames", str(folder)]
    done = subprocess.run(
        [*args, "--features", ",".join(features)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"{kind} worker failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--reference-rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--worker", choices=["evidently", "kubeline"], help=argparse.SUPPRESS)
    parser.add_argument("--frames", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--features", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.frames, args.features.split(","))))
        return
    with tempfile.TemporaryDirectory(prefix="kubeline-bench-monitor-") as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        frames = build_frames(folder, args.rows, args.reference_rows)
        print(
            f"frames: {frames['rows']:,} current x {frames['reference_rows']:,} reference rows, "
            f"{len(frames['features'])} features + prediction "
            f"({time.perf_counter() - started:.0f} s to build)"
        )
        runs: dict[str, list[dict[str, Any]]] = {"evidently": [], "kubeline": []}
        for index in range(args.rounds):
            order = ["evidently", "kubeline"] if index % 2 == 0 else ["kubeline", "evidently"]
            for kind in order:
                found = run_worker(kind, folder, frames["features"])
                runs[kind].append(found)
                print(
                    f"  round {index + 1} {kind:<9} {found['seconds']:>7.2f} s  "
                    f"peak {found['peak_rss_mb']:>5} MB (before {found['rss_before_mb']} MB)  "
                    f"on {found['compared_rows']:,} rows"
                )
    medians = {
        kind: {
            key: statistics.median(float(r[key]) for r in found)
            for key in ("seconds", "peak_rss_mb", "rss_before_mb")
        }
        for kind, found in runs.items()
    }
    alone, ours = runs["evidently"][0]["scores"], runs["kubeline"][0]["scores"]
    gap = max(abs(alone[c] - ours[c]) for c in alone)
    same = {c for c, v in alone.items() if v > THRESHOLD} == {
        c for c, v in ours.items() if v > THRESHOLD
    }
    print("| run | seconds | peak RSS MB | RSS before MB |\n|---|---|---|---|")
    for kind, row in medians.items():
        print(f"| {kind} | {row['seconds']:.2f} | {row['peak_rss_mb']:.0f} | "
              f"{row['rss_before_mb']:.0f} |")  # fmt: skip
    speedup = medians["evidently"]["seconds"] / medians["kubeline"]["seconds"]
    print(
        f"kubeline is {speedup:.1f}x faster; largest score difference {gap:.4f}; "
        f"same columns drifted: {'yes' if same else 'NO'}"
    )
    out = HERE / "results" / f"monitor-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    record = {"frames": frames, "method": METHOD, "threshold": THRESHOLD, "runs": runs}
    record |= {"medians": medians, "speedup": speedup, "max_score_gap": gap, "same": same}
    out.write_text(json.dumps(record, indent=2))
    print(f"results: {out.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main()
