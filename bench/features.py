"""Time kubeline's feature preparation against the reference approach and the I/O floor.

    python bench/features.py [--tickers 8000] [--years 12.4] [--data-dir bench/.data]
                             [--repeat 1] [--pipeline] [--no-cli]

Generates a Kaggle-layout data set once (cached in --data-dir, keyed by its parameters), then
runs, each as its own child process and in the same run:

* baseline: the reference project's way: pandas.read_csv per file and rolling windows per
  ticker in a 2-worker multiprocessing Pool, one Parquet file at the end, computing the same
  features kubeline's default set computes (plus the 30-bar volume mean and adj-close median);
* kubeline: ``kubeline features --data DIR --out FILE.parquet`` (``--no-cli``: the same
  function through ``python -c``);
* floor: a plain multi-threaded read of the same CSV files (polars over all files), nothing
  else.

Wall time comes from the clock, peak RSS from ``os.wait4`` on each child (the largest single
process; the baseline's pool workers are counted one at a time, as the kernel reports them).
``--pipeline`` also times ``kubeline data generate`` + ``kubeline run`` on the demo data.
Results are printed and written to bench/results/features-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent
TARGETS = {"speedup": 8.0, "floor_ratio": 3.0, "memory_ratio": 3.0, "pipeline_seconds": 60.0}
TARGETS["cpu_speedup"] = TARGETS["speedup"]  # informative: the same bar in CPU seconds


@dataclass
class Timing:
    name: str
    seconds: float
    peak_rss_mb: float
    command: str
    cpu_seconds: float = 0.0  # user + system of the child (and of the children it waited for)


def run(name: str, command: list[str], env: dict[str, str] | None = None) -> Timing:
    """Run a child to completion; its wall time, CPU time and peak resident memory."""
    started = time.perf_counter()
    child = subprocess.Popen(command, env=env)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"{name} failed with exit code {child.returncode}: {' '.join(command)}")
    # The child's usage includes the children it waited for (the baseline's pool workers).
    cpu = usage.ru_utime + usage.ru_stime
    # ru_maxrss is in KiB on Linux.
    return Timing(
        name, round(seconds, 2), round(usage.ru_maxrss / 1024, 1), " ".join(command), round(cpu, 2)
    )


def dataset(data_dir: Path, tickers: int, years: float, seed: int) -> tuple[Path, dict[str, int]]:
    """The cached Kaggle-layout data set for these parameters, generated if absent."""
    folder = data_dir / f"kaggle-t{tickers}-y{years:g}-s{seed}"
    marker = folder / ".complete.json"
    if not marker.exists():
        # In a child: a forked child's peak RSS starts at its parent's, so the parent stays small.
        print(f"generating {tickers} tickers x {years} years into {folder} ...", flush=True)
        me = [sys.executable, str(Path(__file__).resolve())]
        run("generate", [*me, "--_generate", str(folder), str(tickers), str(years), str(seed)])
    return folder, json.loads(marker.read_text())


def generate_dataset(folder: Path, tickers: int, years: float, seed: int) -> None:
    """Write the Kaggle-layout data set and its marker (sizes for the report)."""
    from kubeline.data.generate import generate, write_dataset

    started = time.perf_counter()
    frame = generate(tickers=tickers, years=years, seed=seed)
    write_dataset(frame, folder, "kaggle")
    info = {
        "rows": frame.height,
        "tickers": tickers,
        # The canonical frame as ingest returns it (volume as Float64 is the same width).
        "in_memory_bytes": int(frame.estimated_size()),
        "csv_bytes": sum(p.stat().st_size for p in folder.rglob("*.csv")),
        "generate_seconds": round(time.perf_counter() - started, 1),
    }
    (folder / ".complete.json").write_text(json.dumps(info))


# ---------------------------------------------------------------- child: the reference baseline


def _baseline_one(path: str):  # type: ignore[no-untyped-def]
    """One file the reference way: pandas read, per-ticker rolling windows."""
    import numpy as np
    import pandas as pd

    frame = pd.read_csv(path, parse_dates=["Date"])
    frame["ticker"] = Path(path).stem
    p, v = frame["Adj Close"], frame["Volume"].astype(float)

    def ema(x: pd.Series, span: int) -> pd.Series:
        return x.ewm(span=span, adjust=False, min_periods=span).mean()

    change = p.diff()
    gain = change.clip(lower=0).ewm(alpha=1 / 14, adjust=False, min_periods=14).mean()
    loss = (-change).clip(lower=0).ewm(alpha=1 / 14, adjust=False, min_periods=14).mean()
    macd = ema(p, 12) - ema(p, 26)
    signal = ema(macd, 9)
    sma20 = p.rolling(20).mean()
    out = pd.DataFrame(
        {
            "ticker": frame["ticker"],
            "date": frame["Date"],
            "ret_1": p / p.shift(1) - 1,
            "logret_1": np.log(p / p.shift(1)),
            "ret_5": p / p.shift(5) - 1,
            "ret_20": p / p.shift(20) - 1,
            "dist_sma_20": p / sma20 - 1,
            "dist_ema_12": p / ema(p, 12) - 1,
            "volume_mean_30": v.rolling(30).mean(),
            "adj_close_median_30": p.rolling(30).median(),
            "volume_ratio_30": v / v.rolling(30).mean(),
            "rsi_14": 100 * gain / (gain + loss),
            "macd_norm": macd / p,
            "macd_signal_norm": signal / p,
            "macd_hist_norm": (macd - signal) / p,
            "bollinger_width_20": 4 * p.rolling(20).std() / sma20,
            "volatility_20": np.log(p / p.shift(1)).rolling(20).std(),
            "hl_range": (frame["High"] - frame["Low"]) / frame["Close"],
            "_naive_last": p / p.shift(1) - 1,
            "_naive_ma": (p / p.shift(1) - 1).rolling(20).mean(),
            "_direction_ref": 0.0,
            "target": p.shift(-1) / p - 1,
        }
    )
    return out


def baseline(data: Path, out: Path) -> None:
    """The reference project's pipeline: a 2-worker Pool over files, one Parquet at the end."""
    from multiprocessing import Pool

    import pandas as pd

    files = sorted(str(p) for p in data.rglob("*.csv") if p.name != "symbols_valid_meta.csv")
    with Pool(2) as pool:
        parts = pool.map(_baseline_one, files, chunksize=16)
    pd.concat(parts, ignore_index=True).to_parquet(out)


def floor(data: Path) -> None:
    """Read every CSV once, multi-threaded, and do nothing else."""
    import polars as pl

    files = sorted(p for p in data.rglob("*.csv") if p.name != "symbols_valid_meta.csv")
    frame = pl.scan_csv(files, infer_schema_length=100).collect()
    print(f"floor read {frame.height} rows", flush=True)


def same_values(baseline_file: Path, kubeline_file: Path, n_tickers: int) -> dict[str, Any]:
    """Check that both produced the same rows and values on a few tickers; raise if not.

    Every column both write is compared where the baseline has a value; where it has none
    (warm-up rows), kubeline must have none either.
    """
    import numpy as np
    import polars as pl

    theirs = pl.scan_parquet(baseline_file)
    ours = pl.scan_parquet(kubeline_file)
    names = theirs.select("ticker").unique().sort("ticker").collect().to_series().to_list()
    picks = sorted(
        {names[round(i * (len(names) - 1) / max(1, n_tickers - 1))] for i in range(n_tickers)}
    )
    keys = ["ticker", "date"]
    a = theirs.filter(pl.col("ticker").is_in(picks)).collect()
    a = a.with_columns(pl.col("date").cast(pl.Date)).sort(keys)
    b = ours.filter(pl.col("ticker").is_in(picks)).collect().sort(keys)
    if a.select(keys).to_dicts() != b.select(keys).to_dicts():
        raise SystemExit(f"baseline and kubeline hold different rows for {picks}")
    columns = [c for c in a.columns if c in b.columns and c not in keys]
    worst = 0.0
    for column in columns:
        x = a.get_column(column).cast(pl.Float64).fill_nan(None).to_numpy()
        y = b.get_column(column).cast(pl.Float64).to_numpy()
        known = ~np.isnan(x)
        if np.isnan(y[~known]).sum() != (~known).sum():
            raise SystemExit(f"{column}: kubeline has values where the baseline has none")
        if np.isnan(y[known]).any():
            raise SystemExit(f"{column}: kubeline lacks values the baseline has")
        # Relative to the value, with an absolute floor for values at zero (a flat return).
        scale = np.abs(x[known]) + 1e-3
        worst = max(worst, float(np.max(np.abs(x[known] - y[known]) / scale, initial=0.0)))
    if worst > 1e-9:
        raise SystemExit(f"baseline and kubeline values differ by up to {worst:.1e} (relative)")
    return {"tickers": picks, "columns": len(columns), "rows": a.height, "max_rel_diff": worst}


def profile(data: Path, n_files: int) -> None:
    """kubeline's stages timed one after another on one batch, and the plain read beside them."""
    import polars as pl

    from kubeline import features
    from kubeline.data.ingest import read_files
    from kubeline.data.layouts import detect_layout
    from kubeline.data.validate import validate

    layout = detect_layout(data)
    files = layout.files[:n_files]

    def timed(label: str, work: Any) -> Any:
        wall, cpu = time.perf_counter(), time.process_time()
        out = work()
        print(
            f"  {label:34s} {time.perf_counter() - wall:6.2f} s  "
            f"{time.process_time() - cpu:6.2f} cpu-s",
            flush=True,
        )
        return out

    print(f"stages on {len(files)} files, one after another (kubeline's run overlaps them):")
    timed("plain read (the floor's work)", lambda: pl.scan_csv(files).collect())
    raw = timed("ingest.read_files", lambda: read_files(layout, files))
    plan = features.plan(None, raw.columns)
    clean = timed("validate", lambda: validate(raw, min_rows=plan.min_rows).clean)
    lazy = features.build_lazy(clean, plan)
    table = timed("features (in-memory engine)", lambda: lazy.collect(engine="in-memory"))
    timed("features (streaming engine)", lambda: lazy.collect(engine="streaming"))
    out = Path(tempfile.mkdtemp()) / "features.parquet"
    timed(
        "write (polars, uncompressed)",
        lambda: table.write_parquet(out, compression="uncompressed"),
    )
    timed("write (polars, zstd)", lambda: table.write_parquet(out, compression="zstd"))
    shutil.rmtree(out.parent)


# ---------------------------------------------------------------- the benchmark


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tickers", type=int, default=8000)
    parser.add_argument("--years", type=float, default=12.4)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--data-dir", type=Path, default=HERE / ".data")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="rounds of all contenders; ratios are per round, the median reported",
    )
    parser.add_argument("--pipeline", action="store_true", help="also time generate + run")
    parser.add_argument(
        "--no-cli", action="store_true", help="call steps.features.prepare directly"
    )
    parser.add_argument("--skip-baseline", action="store_true", help="for quick iterations")
    parser.add_argument(
        "--check-tickers", type=int, default=3, help="tickers compared value by value"
    )
    parser.add_argument(
        "--profile",
        type=int,
        metavar="FILES",
        help="only time kubeline's stages one after another on the first FILES files",
    )
    parser.add_argument("--_profile", nargs=2, metavar=("DATA", "FILES"), help=argparse.SUPPRESS)
    parser.add_argument("--_baseline", nargs=2, metavar=("DATA", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--_floor", metavar="DATA", help=argparse.SUPPRESS)
    parser.add_argument("--_generate", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._baseline:
        baseline(Path(args._baseline[0]), Path(args._baseline[1]))
        return
    if args._floor:
        floor(Path(args._floor))
        return
    if args._profile:
        profile(Path(args._profile[0]), int(args._profile[1]))
        return
    if args._generate:
        folder, tickers, years, seed = args._generate
        generate_dataset(Path(folder), int(tickers), float(years), int(seed))
        return

    data, info = dataset(args.data_dir, args.tickers, args.years, args.seed)
    if args.profile:
        me = [sys.executable, str(Path(__file__).resolve())]
        run("profile", [*me, "--_profile", str(data), str(args.profile)])
        return
    scratch = args.data_dir / "out"
    scratch.mkdir(parents=True, exist_ok=True)
    me = [sys.executable, str(Path(__file__).resolve())]
    kubeline_out = scratch / "kubeline.parquet"
    if args.no_cli:
        code = (
            "import sys; from kubeline.steps.features import prepare; "
            "print(prepare(sys.argv[1], sys.argv[2]).as_dict()['rows'])"
        )
        kubeline_cmd = [sys.executable, "-c", code, str(data), str(kubeline_out)]
    else:
        kubeline_cmd = [str(VENV_BIN / "kubeline"), "features", "--data", str(data)]
        kubeline_cmd += ["--out", str(kubeline_out)]
    commands = {
        "floor": [*me, "--_floor", str(data)],
        "kubeline": kubeline_cmd,
        "baseline": [*me, "--_baseline", str(data), str(scratch / "baseline.parquet")],
    }
    if args.skip_baseline:
        del commands["baseline"]
    rounds: list[dict[str, Timing]] = []
    for _ in range(max(1, args.repeat)):
        timings: dict[str, Timing] = {}
        for name, command in commands.items():
            timing = run(name, command)
            timings[name] = timing
            print(
                f"  {name:9s} {timing.seconds:8.2f} s  {timing.cpu_seconds:8.2f} cpu-s  "
                f"{timing.peak_rss_mb:9.1f} MB",
                flush=True,
            )
        rounds.append(timings)

    results: dict[str, object] = {
        "dataset": {**info, "path": str(data)},
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "rounds": [{k: asdict(v) for k, v in r.items()} for r in rounds],
        "targets": TARGETS,
    }
    # Each ratio is taken within one round (the contenders ran back to back), then the median
    # over rounds is reported: on a shared machine a round's speed drifts less than a run's.
    per_round: dict[str, list[float]] = {"floor_ratio": [], "memory_ratio": []}
    for r in rounds:
        k = r["kubeline"]
        if "baseline" in r:
            per_round.setdefault("speedup", []).append(r["baseline"].seconds / k.seconds)
            # CPU seconds drift less with the machine's load than wall time: on a shared
            # machine a minutes-long baseline round draws fewer cores than a short kubeline one.
            cpu = r["baseline"].cpu_seconds / k.cpu_seconds
            per_round.setdefault("cpu_speedup", []).append(cpu)
        per_round["floor_ratio"].append(k.seconds / r["floor"].seconds)
        per_round["memory_ratio"].append(k.peak_rss_mb * 2**20 / info["in_memory_bytes"])
    ratios = {key: round(statistics.median(v), 2) for key, v in per_round.items()}
    spread = {key: [round(min(v), 2), round(max(v), 2)] for key, v in per_round.items()}
    if "baseline" in commands:
        results["same_values"] = same_values(
            scratch / "baseline.parquet", kubeline_out, args.check_tickers
        )

    if args.pipeline:
        demo = scratch / "demo"
        shutil.rmtree(demo, ignore_errors=True)
        cli = str(VENV_BIN / "kubeline")
        generate_args = ["--out", str(demo), "--tickers", "20", "--years", "5", "--seed", "7"]
        gen = run("generate", [cli, "data", "generate", *generate_args])
        pipe = run("run", [cli, "run", "--data", str(demo)])
        results["pipeline"] = {"generate": asdict(gen), "run": asdict(pipe)}
        ratios["pipeline_seconds"] = round(gen.seconds + pipe.seconds, 2)
    results["ratios"] = ratios
    results["ratio_range"] = spread

    print()
    print(
        f"data: {info['rows']:,} rows, {info['tickers']:,} files, "
        f"{info['csv_bytes'] / 2**20:,.0f} MB of CSV, "
        f"{info['in_memory_bytes'] / 2**20:,.0f} MB in memory"
    )
    print(
        f"{'run':10s} {'median s':>9s} {'cpu-s':>8s} {'peak MB':>10s}  (over {len(rounds)} rounds)"
    )
    for name in commands:
        runs = [r[name] for r in rounds]
        print(
            f"{name:10s} {statistics.median(x.seconds for x in runs):9.2f} "
            f"{statistics.median(x.cpu_seconds for x in runs):8.2f} "
            f"{max(x.peak_rss_mb for x in runs):10.1f}"
        )
    print()
    checks = {
        "speedup": ("baseline / kubeline time", ">="),
        "cpu_speedup": ("baseline / kubeline CPU seconds", ">="),
        "floor_ratio": ("kubeline / floor time", "<="),
        "memory_ratio": ("kubeline peak / data in memory", "<="),
        "pipeline_seconds": ("generate + run, seconds", "<="),
    }
    for key, (label, op) in checks.items():
        if key not in ratios:
            continue
        value, target = ratios[key], TARGETS[key]
        ok = value >= target if op == ">=" else value <= target
        low, high = spread.get(key, [value, value])
        print(
            f"{label:32s} {value:8.2f}  (rounds {low:.2f}-{high:.2f})  target {op} {target:g}  "
            f"{'ok' if ok else 'MISSED'}"
        )
    if "same_values" in results:
        check = results["same_values"]
        assert isinstance(check, dict)
        print(
            f"same values as the baseline on {', '.join(check['tickers'])}: "
            f"{check['columns']} columns, {check['rows']} rows, "
            f"max relative difference {check['max_rel_diff']:.1e}"
        )

    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = out_dir / f"features-t{args.tickers}-{stamp}.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"\nwritten: {path}")


if __name__ == "__main__":
    main()
