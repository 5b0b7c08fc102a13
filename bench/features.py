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
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent
TARGETS = {"speedup": 8.0, "floor_ratio": 3.0, "memory_ratio": 3.0, "pipeline_seconds": 60.0}


@dataclass
class Timing:
    name: str
    seconds: float
    peak_rss_mb: float
    command: str


def run(name: str, command: list[str], env: dict[str, str] | None = None) -> Timing:
    """Run a child to completion; its wall time and its peak resident memory."""
    started = time.perf_counter()
    child = subprocess.Popen(command, env=env)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"{name} failed with exit code {child.returncode}: {' '.join(command)}")
    # ru_maxrss is in KiB on Linux.
    return Timing(name, round(seconds, 2), round(usage.ru_maxrss / 1024, 1), " ".join(command))


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


# ---------------------------------------------------------------- the benchmark


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tickers", type=int, default=8000)
    parser.add_argument("--years", type=float, default=12.4)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--data-dir", type=Path, default=HERE / ".data")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each; the best counts")
    parser.add_argument("--pipeline", action="store_true", help="also time generate + run")
    parser.add_argument(
        "--no-cli", action="store_true", help="call steps.features.prepare directly"
    )
    parser.add_argument("--skip-baseline", action="store_true", help="for quick iterations")
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
    if args._generate:
        folder, tickers, years, seed = args._generate
        generate_dataset(Path(folder), int(tickers), float(years), int(seed))
        return

    data, info = dataset(args.data_dir, args.tickers, args.years, args.seed)
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
    best: dict[str, Timing] = {}
    for _ in range(max(1, args.repeat)):
        for name, command in commands.items():
            timing = run(name, command)
            print(f"  {name:9s} {timing.seconds:8.2f} s  {timing.peak_rss_mb:9.1f} MB", flush=True)
            if name not in best or timing.seconds < best[name].seconds:
                best[name] = timing

    results: dict[str, object] = {
        "dataset": {**info, "path": str(data)},
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "timings": {k: asdict(v) for k, v in best.items()},
        "targets": TARGETS,
    }
    ratios: dict[str, float] = {}
    k = best["kubeline"]
    if "baseline" in best:
        ratios["speedup"] = round(best["baseline"].seconds / k.seconds, 2)
    ratios["floor_ratio"] = round(k.seconds / best["floor"].seconds, 2)
    ratios["memory_ratio"] = round(k.peak_rss_mb * 2**20 / info["in_memory_bytes"], 2)

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

    print()
    print(
        f"data: {info['rows']:,} rows, {info['tickers']:,} files, "
        f"{info['csv_bytes'] / 2**20:,.0f} MB of CSV, "
        f"{info['in_memory_bytes'] / 2**20:,.0f} MB in memory"
    )
    print(f"{'run':10s} {'seconds':>9s} {'peak MB':>10s}")
    for timing in best.values():
        print(f"{timing.name:10s} {timing.seconds:9.2f} {timing.peak_rss_mb:10.1f}")
    print()
    checks = {
        "speedup": ("baseline / kubeline time", ">="),
        "floor_ratio": ("kubeline / floor time", "<="),
        "memory_ratio": ("kubeline peak / data in memory", "<="),
        "pipeline_seconds": ("generate + run, seconds", "<="),
    }
    for key, (label, op) in checks.items():
        if key not in ratios:
            continue
        value, target = ratios[key], TARGETS[key]
        ok = value >= target if op == ">=" else value <= target
        print(f"{label:32s} {value:8.2f}  target {op} {target:g}  {'ok' if ok else 'MISSED'}")

    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = out_dir / f"features-t{args.tickers}-{stamp}.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"\nwritten: {path}")


if __name__ == "__main__":
    main()
