"""The feature engine: technical features and targets for every ticker in one polars pass.

Every feature is a polars expression evaluated on all tickers at once (frame sorted by ticker and
date; no Python loop per ticker), and a feature at bar t only reads bars <= t of its own ticker
(rolling windows, shifts into the past, recursive averages). Targets alone look ahead, by
``horizon`` bars. ``adj_close`` is the price (``close`` where it is absent).

Output columns: ticker, date, the features in the order asked, ``_naive_last``, ``_naive_ma``,
``_direction_ref`` (what the naive baselines and direction metrics need), then ``target`` last.
Every input row is kept: the warm-up rows have null features and the last ``horizon`` rows of a
ticker have a null target (serving predicts from those). ``trainable`` keeps the complete rows.

Conventions, matching pandas defaults where a choice exists: rolling standard deviations use
ddof=1; EMAs are recursive (``adjust=False``) and start after ``span`` bars; RSI is Wilder's
(exponential smoothing with alpha = 1/14 over gains and losses). Non-finite results (a zero
volume average, a flat RSI) become null rather than inf/NaN.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import polars as pl

from kubeline.data import schema as s
from kubeline.errors import ConfigError
from kubeline.targets import TargetSpec, target_spec

if TYPE_CHECKING:
    import pandas as pd

    from kubeline.runconfig import RunConfig

Frame = TypeVar("Frame", "pd.DataFrame", pl.DataFrame)

PRICE = s.ADJ_CLOSE
_POS = "_pos"  # 0-based bar number within the ticker
_LEFT = "_left"  # bars after this one within the ticker
_GROUP = "_group"  # integer id of the ticker, a cheaper key than the name for .over()

# Speed: on rows sorted by ticker, a rolling window or shift over the whole column equals the
# per-ticker one wherever the window lies inside one ticker, so those run unpartitioned and rows
# whose window would reach into the previous ticker are masked by ``_pos`` (see
# ``build_lazy``). Only recursive EMAs, which carry state, run ``.over(_GROUP)``. The price:
# rolling sums are updated incrementally along the column, so a ticker's values can differ in
# the last bits (~1e-15 relative) depending on which tickers precede it in the frame.


def _price() -> pl.Expr:
    return pl.col(PRICE)


def _since(n: int) -> pl.Expr:
    """True where the n bars ending at this one all belong to the ticker."""
    return pl.col(_POS) >= n - 1


def _ret(n: int) -> pl.Expr:
    return _price() / _price().shift(n) - 1


def _ema(expr: pl.Expr, span: int) -> pl.Expr:
    return expr.ewm_mean(span=span, adjust=False, min_samples=span).over(_GROUP)


def _wilder(expr: pl.Expr, n: int) -> pl.Expr:
    return expr.ewm_mean(alpha=1 / n, adjust=False, min_samples=n).over(_GROUP)


# The first bar's difference would reach into the previous ticker: null it before smoothing.
def _change() -> pl.Expr:
    return pl.when(_since(2)).then(_price().diff())


def _col(name: str) -> pl.Expr:
    return pl.col(name)


# Intermediate columns shared by several features, computed once per build in stages (a stage
# reads only earlier stages): name -> (stage, expression).
_SHARED: dict[str, tuple[int, Callable[[], pl.Expr]]] = {
    "_ema_12": (1, lambda: _ema(_price(), 12)),
    "_ema_26": (1, lambda: _ema(_price(), 26)),
    "_sma_20": (1, lambda: _price().rolling_mean(20)),
    "_std_20": (1, lambda: _price().rolling_std(20)),
    "_volume_mean_30": (1, lambda: pl.col(s.VOLUME).rolling_mean(30)),
    "_gain_14": (1, lambda: _wilder(_change().clip(lower_bound=0), 14)),
    "_loss_14": (1, lambda: _wilder((-_change()).clip(lower_bound=0), 14)),
    "_macd": (2, lambda: _col("_ema_12") - _col("_ema_26")),
    "_signal": (3, lambda: _ema(_col("_macd"), 9)),
}
_USES: dict[str, tuple[str, ...]] = {
    "_macd": ("_ema_12", "_ema_26"),
    "_signal": ("_macd",),
}


@dataclass(frozen=True)
class FeatureSpec:
    """A feature: the columns it reads, the bars of history its first value needs, its formula."""

    name: str
    inputs: tuple[str, ...]
    window: int
    scale_free: bool
    expression: Callable[[], pl.Expr]
    description: str
    shared: tuple[str, ...] = ()  # intermediate columns (``_SHARED``) the expression reads


def _spec(
    name: str,
    inputs: tuple[str, ...],
    window: int,
    scale_free: bool,
    expression: Callable[[], pl.Expr],
    description: str,
    shared: tuple[str, ...] = (),
) -> tuple[str, FeatureSpec]:
    return name, FeatureSpec(name, inputs, window, scale_free, expression, description, shared)


_P = (PRICE,)
_V = (s.VOLUME,)
_MACD = ("_macd",)
_SIGNAL = ("_macd", "_signal")
FEATURES: dict[str, FeatureSpec] = dict(
    [
        _spec("ret_1", _P, 2, True, lambda: _ret(1), "1-bar simple return"),
        _spec("logret_1", _P, 2, True, lambda: (_price() / _price().shift(1)).log(), "log return"),
        _spec("ret_5", _P, 6, True, lambda: _ret(5), "5-bar simple return"),
        _spec("ret_20", _P, 21, True, lambda: _ret(20), "20-bar simple return"),
        _spec("sma_10", _P, 10, False, lambda: _price().rolling_mean(10), "10-bar mean price"),
        _spec("sma_20", _P, 20, False, lambda: _col("_sma_20"), "20-bar mean price", ("_sma_20",)),
        _spec("ema_12", _P, 12, False, lambda: _col("_ema_12"), "12-bar EMA", ("_ema_12",)),
        _spec("ema_26", _P, 26, False, lambda: _col("_ema_26"), "26-bar EMA", ("_ema_26",)),
        _spec(
            "dist_sma_20",
            _P,
            20,
            True,
            lambda: _price() / _col("_sma_20") - 1,
            "price / sma_20 - 1",
            ("_sma_20",),
        ),
        _spec(
            "dist_ema_12",
            _P,
            12,
            True,
            lambda: _price() / _col("_ema_12") - 1,
            "price / ema_12 - 1",
            ("_ema_12",),
        ),
        _spec(
            "volume_mean_30",
            _V,
            30,
            False,
            lambda: _col("_volume_mean_30"),
            "30-bar mean volume",
            ("_volume_mean_30",),
        ),
        _spec(
            "adj_close_median_30",
            _P,
            30,
            False,
            lambda: _price().rolling_median(30),
            "30-bar median of the adjusted close",
        ),
        _spec(
            "volume_ratio_30",
            _V,
            30,
            True,
            lambda: pl.col(s.VOLUME) / _col("_volume_mean_30"),
            "volume / its 30-bar mean",
            ("_volume_mean_30",),
        ),
        _spec(
            "rsi_14",
            _P,
            15,
            True,
            lambda: 100 * _col("_gain_14") / (_col("_gain_14") + _col("_loss_14")),
            "Wilder's 14-bar RSI, 0-100",
            ("_gain_14", "_loss_14"),
        ),
        _spec("macd", _P, 26, False, lambda: _col("_macd"), "ema_12 - ema_26", _MACD),
        _spec("macd_signal", _P, 34, False, lambda: _col("_signal"), "9-bar EMA of macd", _SIGNAL),
        _spec(
            "macd_hist",
            _P,
            34,
            False,
            lambda: _col("_macd") - _col("_signal"),
            "macd - macd_signal",
            _SIGNAL,
        ),
        _spec("macd_norm", _P, 26, True, lambda: _col("_macd") / _price(), "macd / price", _MACD),
        _spec(
            "macd_signal_norm",
            _P,
            34,
            True,
            lambda: _col("_signal") / _price(),
            "macd_signal / price",
            _SIGNAL,
        ),
        _spec(
            "macd_hist_norm",
            _P,
            34,
            True,
            lambda: (_col("_macd") - _col("_signal")) / _price(),
            "macd_hist / price",
            _SIGNAL,
        ),
        _spec(
            "bollinger_width_20",
            _P,
            20,
            True,
            # (upper - lower) / middle with bands at 2 standard deviations.
            lambda: 4 * _col("_std_20") / _col("_sma_20"),
            "(upper - lower) / middle of 2-sigma 20-bar bands",
            ("_std_20", "_sma_20"),
        ),
        _spec(
            "volatility_20",
            _P,
            21,
            True,
            lambda: (_price() / _price().shift(1)).log().rolling_std(20),
            "20-bar standard deviation of log returns",
        ),
        _spec(
            "hl_range",
            (s.HIGH, s.LOW, s.CLOSE),
            1,
            True,
            lambda: (pl.col(s.HIGH) - pl.col(s.LOW)) / pl.col(s.CLOSE),
            "(high - low) / close",
        ),
    ]
)

# Scale-free features: comparable across tickers and over time, for return targets.
DEFAULT_FEATURES: list[str] = [
    "ret_1",
    "logret_1",
    "ret_5",
    "ret_20",
    "dist_sma_20",
    "dist_ema_12",
    "volume_ratio_30",
    "rsi_14",
    "macd_norm",
    "macd_signal_norm",
    "macd_hist_norm",
    "bollinger_width_20",
    "volatility_20",
    "hl_range",
]


def target_expressions(spec: TargetSpec, horizon: int) -> dict[str, pl.Expr]:
    """Expressions for a target's naive columns, its direction reference and the target."""
    h, ma = horizon, spec.ma_window
    known_ahead = pl.col(_LEFT) >= h  # the value h bars ahead belongs to the same ticker
    if spec.kind == "level":
        value = pl.col(s.VOLUME)
        return {
            s.NAIVE_LAST: value,
            s.NAIVE_MA: pl.when(_since(ma)).then(value.rolling_mean(ma)),
            s.DIRECTION_REF: value,
            s.TARGET: pl.when(known_ahead).then(value.shift(-h)),
        }
    ratio_past = _price() / _price().shift(h)
    ratio_next = _price().shift(-h) / _price()
    if spec.kind == "log_return":
        past, ahead = ratio_past.log(), ratio_next.log()
    else:
        past, ahead = ratio_past - 1, ratio_next - 1
    return {
        s.NAIVE_LAST: pl.when(_since(h + 1)).then(past),
        s.NAIVE_MA: pl.when(_since(h + ma)).then(past.rolling_mean(ma)),
        s.DIRECTION_REF: pl.lit(0.0),
        s.TARGET: pl.when(known_ahead).then(ahead),
    }


NON_FEATURE_COLUMNS = (s.TICKER, s.DATE, s.NAIVE_LAST, s.NAIVE_MA, s.DIRECTION_REF, s.TARGET)


@dataclass(frozen=True)
class FeaturePlan:
    """Which features will be computed, which were skipped for missing inputs, and why."""

    features: list[str]
    skipped: dict[str, list[str]]  # feature -> the input columns it lacked
    required_history: int  # bars before the first row with every feature and baseline
    # Rows a ticker needs, else validation drops it: the run config's ``data.min_rows`` when
    # set, else the history plus the target's lead (one trainable row).
    min_rows: int


def plan(
    features: list[str] | None,
    available_columns: list[str] | tuple[str, ...],
    target: str = "next_return",
    horizon: int = 1,
    min_rows: int | None = None,
) -> FeaturePlan:
    """Check names and inputs: unknown names are a ConfigError, absent inputs a skip."""
    requested = list(DEFAULT_FEATURES if features is None else features)
    unknown = [f for f in requested if f not in FEATURES]
    if unknown:
        raise ConfigError(
            f"unknown feature(s): {', '.join(unknown)}",
            hint=f"choose from: {', '.join(FEATURES)}",
        )
    spec = target_spec(target)
    if horizon < 1:
        raise ConfigError(f"horizon must be at least 1 bar, got {horizon}")
    available = set(available_columns)
    if s.CLOSE in available:
        available.add(s.ADJ_CLOSE)  # the price falls back to close
    lacking = [c for c in spec.inputs if c not in available]
    if lacking:
        raise ConfigError(
            f"target {target!r} needs column(s) {', '.join(lacking)}, which the data lacks",
            hint="choose a return target or provide a volume column",
        )
    chosen, skipped = [], {}
    for name in dict.fromkeys(requested):
        missing = [c for c in FEATURES[name].inputs if c not in available]
        if missing:
            skipped[name] = missing
        else:
            chosen.append(name)
    history = max([FEATURES[f].window for f in chosen] + [spec.history(horizon)])
    return FeaturePlan(
        chosen, skipped, history, history + horizon if min_rows is None else min_rows
    )


def plan_for(config: RunConfig, available_columns: list[str] | tuple[str, ...]) -> FeaturePlan:
    """The plan a run config asks for on data with these columns."""
    return plan(
        config.features, available_columns, config.target, config.horizon, config.data.min_rows
    )


def plan_inputs(feature_plan: FeaturePlan, target: str = "next_return") -> list[str]:
    """The canonical value columns the plan's features and the target read, in schema order."""
    needed = {c for name in feature_plan.features for c in FEATURES[name].inputs}
    needed.update(target_spec(target).inputs)
    return [c for c in s.VALUES if c in needed]


def _shared_needed(feature_plan: FeaturePlan) -> list[str]:
    needed = {name for f in feature_plan.features for name in FEATURES[f].shared}
    for name in list(needed):
        needed.update(_USES.get(name, ()))
    return [name for name in _SHARED if name in needed]


def feature_expressions(
    feature_plan: FeaturePlan, target: str = "next_return", horizon: int = 1
) -> list[pl.Expr]:
    """Raw feature, baseline and target expressions (before masking), in output order."""
    exprs = [FEATURES[name].expression().alias(name) for name in feature_plan.features]
    exprs += [e.alias(n) for n, e in target_expressions(target_spec(target), horizon).items()]
    return exprs


def build_lazy(
    frame: pl.DataFrame,
    feature_plan: FeaturePlan,
    target: str = "next_return",
    horizon: int = 1,
) -> pl.LazyFrame:
    """The features frame as a lazy query over a canonical frame (any row order)."""
    if s.ADJ_CLOSE not in frame.columns:
        frame = frame.with_columns(pl.col(s.CLOSE).alias(s.ADJ_CLOSE))
    # A batch of files may lack a column the plan (made on the first batch) reads: null there.
    absent = [c for c in plan_inputs(feature_plan, target) if c not in frame.columns]
    frame = frame.with_columns(pl.lit(None, dtype=pl.Float64).alias(c) for c in absent)
    values = [c for c in s.VALUES if c in frame.columns]
    frame = frame.select(pl.col(s.TICKER).cast(pl.String), s.DATE, *values)
    if not s.is_sorted(frame):  # ingest and validate hand over sorted frames: skip the sort
        frame = frame.sort(s.TICKER, s.DATE)
    lazy = (
        frame.lazy()
        .with_columns(pl.col(c).cast(pl.Float64) for c in values)
        .with_columns(pl.col(s.TICKER).rle_id().alias(_GROUP))
        .with_columns(
            pl.int_range(pl.len(), dtype=pl.Int64).over(_GROUP).alias(_POS),
            pl.int_range(pl.len(), 0, -1, dtype=pl.Int64).over(_GROUP).sub(1).alias(_LEFT),
        )
    )
    shared = _shared_needed(feature_plan)
    for stage in sorted({_SHARED[name][0] for name in shared}):
        lazy = lazy.with_columns(
            _SHARED[name][1]().alias(name) for name in shared if _SHARED[name][0] == stage
        )
    exprs = feature_expressions(feature_plan, target, horizon)
    windows = {name: FEATURES[name].window for name in feature_plan.features}
    # One select computes and masks each column (polars evaluates the repeated expression
    # once): a window reaching into the previous ticker, and inf/NaN from a zero denominator,
    # become null.
    return lazy.select(
        pl.col(s.TICKER),
        pl.col(s.DATE),
        *[_masked(e, windows.get(e.meta.output_name(), 1)) for e in exprs],
    )


def _masked(expr: pl.Expr, window: int) -> pl.Expr:
    column = expr.cast(pl.Float64)
    keep = column.is_finite()
    if window > 1:
        keep = keep & _since(window)
    return pl.when(keep).then(column).alias(expr.meta.output_name())


def build_polars(
    frame: pl.DataFrame,
    *,
    features: list[str] | None = None,
    target: str = "next_return",
    horizon: int = 1,
) -> tuple[pl.DataFrame, FeaturePlan]:
    """Features for a polars canonical frame, with the plan saying what was skipped."""
    feature_plan = plan(features, frame.columns, target, horizon)
    # The in-memory engine: on 1,000 tickers this plan took 1.08 CPU-s against 1.56 on
    # polars' default streaming engine (rolling windows and .over() do not stream well).
    table = build_lazy(frame, feature_plan, target, horizon).collect(engine="in-memory")
    return table, feature_plan


def build(
    frame: Frame,
    *,
    features: list[str] | None = None,
    target: str = "next_return",
    horizon: int = 1,
) -> Frame:
    """Features and target for every ticker; pandas in gives pandas out, polars gives polars.

    Features whose input columns are absent are skipped; ``plan`` says which.
    """
    if not isinstance(frame, pl.DataFrame):  # pandas, imported only by callers that use it
        polars_frame = pl.from_pandas(frame.reset_index(drop=True))
        if polars_frame.schema[s.DATE] != pl.Date:
            polars_frame = polars_frame.with_columns(pl.col(s.DATE).cast(pl.Date))
        out, _ = build_polars(polars_frame, features=features, target=target, horizon=horizon)
        return out.to_pandas()
    out, _ = build_polars(frame, features=features, target=target, horizon=horizon)
    return out


def feature_names(frame: pd.DataFrame | pl.DataFrame) -> list[str]:
    """The model-input columns of a features frame, in order."""
    return [c for c in frame.columns if c not in NON_FEATURE_COLUMNS]


def trainable(frame: Frame) -> Frame:
    """Rows where every feature, baseline and the target are known (for training/evaluation)."""
    needed = [c for c in frame.columns if c not in (s.TICKER, s.DATE)]
    if isinstance(frame, pl.DataFrame):
        return frame.drop_nulls(needed)
    return frame.dropna(subset=needed).reset_index(drop=True)


def latest(frame: Frame) -> Frame:
    """Each ticker's last row: what serving predicts from (its target is still unknown)."""
    if isinstance(frame, pl.DataFrame):
        return frame.group_by(s.TICKER, maintain_order=True).last()
    return frame.groupby(s.TICKER, sort=True).tail(1).reset_index(drop=True)
