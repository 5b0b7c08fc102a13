"""Synthetic daily OHLCV that looks like exchange data, with a planted signal a model can find.

Per ticker the total-return price follows geometric Brownian motion whose drift and volatility
switch between a calm and a turbulent regime (a two-state Markov chain). Volume is strongly
persistent (AR(1) in logs, phi ~0.9) and rises with the size of the day's move. ``close`` is the
traded price; ``adj_close`` is close times a dividend factor below 1 that reaches 1 on the last
day, as Yahoo adjusts. Some tickers list late and a few days are missing.

The planted signal: every ticker's standardized daily log-return shocks are AR(1) with the same
known coefficient ``return_ar``, by default ``PLANTED_RETURN_AR`` = 0.2, so tomorrow's return is
partly predictable from today's (``ret_1``/``logret_1`` in the default feature set; a linear
model can learn it). That is far more than real daily equity returns show (a few hundredths at
most, which no demo-sized run can tell from luck: at 0.05 or less, even 50 tickers x 8 years
left the gain over the constant forecast at p = 0.11). It is chosen so the demo (20 tickers x 5
years, the default run config) beats every naive forecast by 1-2% RMSE with a Diebold-Mariano
p-value far below the gate's 0.05, and so the honest gate has something real to promote.
``return_ar=0`` plants nothing: log returns are then independent draws (a random walk whose
drift and volatility switch regimes), and the gate should refuse whatever is trained on it.

Everything is drawn in numpy over blocks of tickers at once; the only Python loops are over
blocks and over time steps of the two AR(1) recursions, each step a vector over the block.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl

from kubeline import storage
from kubeline.data import schema as s
from kubeline.errors import KubelineError

YAHOO_HEADER = {
    s.DATE: "Date",
    s.OPEN: "Open",
    s.HIGH: "High",
    s.LOW: "Low",
    s.CLOSE: "Close",
    s.ADJ_CLOSE: "Adj Close",
    s.VOLUME: "Volume",
}
KAGGLE_META_COLUMNS = (
    "Nasdaq Traded",
    "Symbol",
    "Security Name",
    "Listing Exchange",
    "Market Category",
    "ETF",
    "Round Lot Size",
    "Test Issue",
    "Financial Status",
    "CQS Symbol",
    "NASDAQ Symbol",
    "NextShares",
)
TRADING_DAYS_PER_YEAR = 252
_HOLIDAYS = ((1, 1), (7, 4), (12, 25))  # month, day: fixed closures, enough to look real
_BLOCK = 1024  # tickers drawn together: ~25 MB per float array at 3,100 days
_ETF_SHARE = 0.15
# The planted signal (module docstring): the lag-1 autocorrelation of daily return shocks.
PLANTED_RETURN_AR = 0.2

Layout = Literal["yahoo", "kaggle", "long"]


def trading_days(start: date, years: float) -> np.ndarray:
    """Weekdays from ``start`` minus fixed holidays, about ``years * 252`` of them (datetime64)."""
    n_wanted = max(1, round(years * TRADING_DAYS_PER_YEAR))
    # 1.5 calendar days per trading day is always enough (7/5 plus holidays).
    calendar = np.datetime64(start, "D") + np.arange(int(n_wanted * 1.5) + 10)
    weekday = (calendar.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday (3)
    months = calendar.astype("datetime64[M]").astype(np.int64) % 12 + 1
    days = (calendar - calendar.astype("datetime64[M]")).astype(np.int64) + 1
    holiday = np.zeros(calendar.shape, dtype=bool)
    for month, day in _HOLIDAYS:
        holiday |= (months == month) & (days == day)
    return calendar[(weekday < 5) & ~holiday][:n_wanted]


def ticker_names(n: int, rng: np.random.Generator) -> list[str]:
    """``n`` distinct symbols of 3-4 uppercase letters, sorted."""
    space3, space4 = 26**3, 26**4
    codes = rng.choice(space3 + space4, size=n, replace=False)
    names = []
    for code in codes.tolist():
        width = 3 if code < space3 else 4
        code = code if code < space3 else code - space3
        letters = []
        for _ in range(width):
            code, rem = divmod(code, 26)
            letters.append(chr(65 + rem))
        names.append("".join(reversed(letters)))
    return sorted(names)


# The regime change ``generate(drift_from=...)`` plants (volatility and volume multipliers).
DRIFT_VOLATILITY = 2.5
DRIFT_VOLUME = 3.0


def _ar1(shocks: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Stationary unit-variance AR(1) along axis 0 driven by standard normal ``shocks``."""
    out = np.empty_like(shocks)
    scale = np.sqrt(1.0 - phi**2)
    out[0] = shocks[0]
    for t in range(1, shocks.shape[0]):
        out[t] = phi * out[t - 1] + scale * shocks[t]
    return out


def _block(
    n_days: int, n: int, rng: np.random.Generator, return_ar: float, shift_day: int | None = None
) -> dict[str, np.ndarray]:
    """Prices and volumes for ``n`` tickers over ``n_days`` as (days, tickers) arrays."""
    # Regimes: switch with probability ~1/250 a day; state = parity of the number of switches.
    switch_p = rng.uniform(1 / 400, 1 / 150, size=n)
    switches = rng.random((n_days, n)) < switch_p
    turbulent = (np.cumsum(switches, axis=0) + rng.integers(0, 2, size=n)) % 2 == 1
    base_vol = rng.lognormal(np.log(0.015), 0.35, size=n)  # daily sigma in the calm regime
    # Calm regimes drift up, turbulent ones down and faster: the median name gains a little
    # over a decade, and few fall to the price floor.
    base_mu = rng.normal(0.0007, 0.0003, size=n)
    sigma = np.where(turbulent, base_vol * rng.uniform(1.5, 2.2, size=n), base_vol)
    mu = np.where(turbulent, base_mu - 0.0008, base_mu)
    shifted = np.zeros((n_days, 1), dtype=bool)
    if shift_day is not None:  # the regime change: no random draw, so other values stay equal
        shifted[shift_day:] = True
        sigma = np.where(shifted, sigma * DRIFT_VOLATILITY, sigma)

    noise = _ar1(rng.standard_normal((n_days, n)), np.full(n, return_ar))
    logret = mu - 0.5 * sigma**2 + sigma * noise

    start_price = rng.lognormal(np.log(40.0), 1.0, size=n)
    # A floor keeps the smallest names trading above a cent, as delisting would.
    log_total = np.maximum(np.log(start_price) + np.cumsum(logret, axis=0), np.log(0.5))

    # Quarterly dividends for ~60% of tickers; adj = close * product of later (1 - yield).
    payer = rng.random(n) < 0.6
    quarterly_yield = np.where(payer, rng.uniform(0.002, 0.012, size=n), 0.0)
    ex_day = (np.arange(n_days)[:, None] + rng.integers(0, 63, size=n)) % 63 == 0
    log_keep = np.where(ex_day, np.log1p(-quarterly_yield), 0.0)
    later = log_keep.sum(axis=0) - np.cumsum(log_keep, axis=0)  # dividends after day t
    adj_close = np.exp(log_total)
    close = adj_close * np.exp(-later)

    gap = rng.normal(0.0, 0.25, size=(n_days, n)) * sigma
    open_ = np.empty_like(close)
    open_[0] = close[0]
    open_[1:] = close[:-1] * np.exp(gap[1:])
    top = np.maximum(open_, close)
    bottom = np.minimum(open_, close)
    high = top * np.exp(np.abs(rng.normal(0.0, 0.5, size=(n_days, n))) * sigma)
    low = bottom * np.exp(-np.abs(rng.normal(0.0, 0.5, size=(n_days, n))) * sigma)

    phi_v = rng.uniform(0.85, 0.95, size=n)
    log_volume = (
        np.log(rng.lognormal(np.log(500_000), 1.2, size=n))
        + 0.5 * _ar1(rng.standard_normal((n_days, n)), phi_v)
        + 0.35 * np.minimum(np.abs(logret) / sigma, 6.0)
        + 0.3 * turbulent
        + np.log(DRIFT_VOLUME) * shifted
    )
    volume = np.rint(np.exp(log_volume))
    return {
        s.OPEN: open_,
        s.HIGH: high,
        s.LOW: low,
        s.CLOSE: close,
        s.ADJ_CLOSE: adj_close,
        s.VOLUME: volume,
    }


def generate(
    tickers: int,
    years: float,
    seed: int,
    start: date = date(2000, 1, 3),
    return_ar: float = PLANTED_RETURN_AR,
    drift_from: date | None = None,
) -> pl.DataFrame:
    """A canonical frame of synthetic daily OHLCV, identical for the same arguments.

    ``return_ar`` is the planted lag-1 autocorrelation of every ticker's daily return shocks
    (see the module docstring); 0 plants nothing: returns are then a random walk whose drift
    and volatility switch regimes, and no model should pass an honest gate on it.

    ``drift_from`` plants a regime change for the monitor to find: from that date on, every
    ticker's volatility is ``DRIFT_VOLATILITY`` times and its volume ``DRIFT_VOLUME`` times what
    it would have been; the bars before it are exactly those of the same call without it.
    """
    if tickers < 1 or years <= 0:
        raise KubelineError(
            f"cannot generate {tickers} tickers over {years} years",
            hint="ask for at least 1 ticker and a positive number of years",
        )
    if not -1.0 < return_ar < 1.0:
        raise KubelineError(
            f"cannot plant a return autocorrelation of {return_ar}",
            hint="give return_ar strictly between -1 and 1 (0 plants no signal)",
        )
    rng = np.random.default_rng(seed)
    days = trading_days(start, years)
    n_days = len(days)
    names = ticker_names(tickers, rng)
    day_numbers = days.astype("datetime64[D]").astype(np.int32)
    shift_day = None
    if drift_from is not None:
        shift_day = int(np.searchsorted(days.astype("datetime64[D]"), np.datetime64(drift_from)))
        if shift_day >= n_days:
            raise KubelineError(
                f"the drift date {drift_from} is after the last generated day "
                f"{days[-1].astype('datetime64[D]')}",
                hint="give a date inside the generated years",
            )
    parts = []
    for first in range(0, tickers, _BLOCK):
        n = min(_BLOCK, tickers - first)
        block_rng = np.random.default_rng([seed, first])
        values = _block(n_days, n, block_rng, return_ar, shift_day)
        # A quarter of the names list later; about 1 day in 800 is missing from the record.
        listed_from = np.where(
            block_rng.random(n) < 0.25, block_rng.integers(0, max(1, n_days // 2), size=n), 0
        )
        keep = np.arange(n_days)[:, None] >= listed_from
        keep &= block_rng.random((n_days, n)) >= 1 / 800
        keep[-1] = True  # every ticker trades on the last day, so all end together
        # Transposed so rows come out grouped by ticker, in date order.
        mask = keep.T
        owner = np.repeat(np.arange(n), mask.sum(axis=1))
        columns: dict[str, object] = {
            s.TICKER: pl.Series(names[first : first + n], dtype=pl.String).gather(owner),
            s.DATE: np.broadcast_to(day_numbers, (n, n_days))[mask],
        }
        for name, array in values.items():
            columns[name] = np.round(array.T[mask], 4 if name != s.VOLUME else 0)
        parts.append(
            pl.DataFrame(columns).with_columns(
                pl.col(s.DATE).cast(pl.Date), pl.col(s.VOLUME).cast(pl.Int64)
            )
        )
    frame = pl.concat(parts)
    # Rounding can push open outside [low, high] by a tick; real feeds never do.
    return frame.select(
        s.TICKER,
        s.DATE,
        pl.col(s.OPEN).clip(pl.col(s.LOW), pl.col(s.HIGH)),
        s.HIGH,
        s.LOW,
        s.CLOSE,
        s.ADJ_CLOSE,
        s.VOLUME,
    )


def etf_tickers(tickers: list[str]) -> set[str]:
    """The tickers ``write_dataset`` files as ETFs in the kaggle layout (a stable ~15%)."""
    # A hash of the name, not a random draw, so the split does not depend on the frame.
    return {
        t
        for t in tickers
        if (sum(ord(c) * 31**i for i, c in enumerate(t)) % 100) < 100 * _ETF_SHARE
    }


def _meta(tickers: list[str], etfs: set[str]) -> pl.DataFrame:
    is_etf = ["Y" if t in etfs else "N" for t in tickers]
    return pl.DataFrame(
        {
            "Nasdaq Traded": ["Y"] * len(tickers),
            "Symbol": tickers,
            "Security Name": [
                f"{t} {'Index ETF' if t in etfs else 'Holdings Inc. - Common Stock'}"
                for t in tickers
            ],
            "Listing Exchange": ["Q" if i % 3 else "N" for i in range(len(tickers))],
            "Market Category": ["Q" if i % 3 else " " for i in range(len(tickers))],
            "ETF": is_etf,
            "Round Lot Size": [100.0] * len(tickers),
            "Test Issue": ["N"] * len(tickers),
            "Financial Status": ["N" if i % 3 else "" for i in range(len(tickers))],
            "CQS Symbol": ["" if i % 3 else t for i, t in enumerate(tickers)],
            "NASDAQ Symbol": tickers,
            "NextShares": ["N"] * len(tickers),
        }
    ).select(KAGGLE_META_COLUMNS)


def _yahoo_frame(frame: pl.DataFrame) -> pl.DataFrame:
    present = [c for c in YAHOO_HEADER if c in frame.columns]
    return frame.select(present).rename({c: YAHOO_HEADER[c] for c in present})


def _write_per_ticker(frame: pl.DataFrame, folder: Path, tickers: set[str] | None) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    groups = frame.partition_by(s.TICKER, as_dict=True, maintain_order=True)
    jobs = [
        (folder / f"{key[0]}.csv", part)
        for key, part in groups.items()
        if tickers is None or key[0] in tickers
    ]

    def write(job: tuple[Path, pl.DataFrame]) -> Path:
        path, part = job
        _yahoo_frame(part).write_csv(path, date_format="%Y-%m-%d")
        return path

    # polars releases the GIL while writing, so threads overlap the 8,000 small writes.
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(write, jobs))


def write_dataset(
    frame: pl.DataFrame,
    out: Path,
    layout: Layout,
    fmt: Literal["csv", "parquet"] = "csv",
) -> list[Path]:
    """Write ``frame`` in one of the layouts ingest reads; returns the files written.

    ``yahoo`` and ``kaggle`` write the folder ``out``; ``long`` writes the file ``out`` when it
    ends in .csv or .parquet, else the folder ``out`` holding ``prices.<fmt>``. The output
    policy is ``kubeline.storage``'s: output appears all at once, a folder holding files
    kubeline did not write is refused (never emptied), a file where a folder is expected (or
    the reverse) is an error.
    """
    out = Path(out)
    if layout not in ("yahoo", "kaggle", "long"):
        raise KubelineError(f"unknown layout {layout!r}", hint="use yahoo, kaggle or long")
    frame = frame.sort(s.TICKER, s.DATE)
    if layout == "long" and out.suffix in (".csv", ".parquet"):
        # Only the one file is ours to replace; the folder may hold other things.
        with storage.atomic_path(storage.check_file_target(out, "--out")) as tmp:
            _write_long(frame, tmp, out.suffix)
        return [out]
    with storage.output_folder(out, "--out") as tmp:
        if layout == "long":
            written = [tmp / f"prices.{fmt}"]
            _write_long(frame, written[0], f".{fmt}")
        elif layout == "yahoo":
            written = _write_per_ticker(frame, tmp, None)
        else:
            tickers = frame.get_column(s.TICKER).unique(maintain_order=True).to_list()
            etfs = etf_tickers(tickers)
            written = _write_per_ticker(frame, tmp / "etfs", etfs)
            written += _write_per_ticker(frame, tmp / "stocks", set(tickers) - etfs)
            meta = tmp / "symbols_valid_meta.csv"
            _meta(tickers, etfs).write_csv(meta)
            written.append(meta)
        relative = [p.relative_to(tmp) for p in written]
    return sorted(out / p for p in relative)


def _write_long(frame: pl.DataFrame, path: Path, suffix: str) -> None:
    if suffix == ".parquet":
        frame.write_parquet(path)
    else:
        frame.write_csv(path, date_format="%Y-%m-%d")
