"""The run config: one YAML file saying what to predict, how to split, which models to try.

Every key is validated on load (unknown keys are errors, not silently ignored) and a bad value
is reported as ``file: key.path: what is wrong (what is allowed)``. Loading must stay cheap:
scikit-learn is imported only when a config names a custom estimator by import path.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from kubeline.errors import ConfigError
from kubeline.targets import TARGETS, TargetKind, TargetName

MetricName = Literal["rmse", "mae", "r2", "directional_accuracy"]
BuiltinModel = Literal["ridge", "poly2", "random_forest", "hist_gbm"]
BaselineName = Literal["best", "constant", "persistence", "moving_average"]

# Hyperparameters a grid may tune for each built-in candidate. Kept here, not read from
# scikit-learn, so loading a config never imports it; a unit test checks the two agree.
BUILTIN_PARAMS: dict[str, frozenset[str]] = {
    "ridge": frozenset({"alpha", "fit_intercept", "solver"}),
    "poly2": frozenset({"alpha", "fit_intercept", "interaction_only"}),
    "random_forest": frozenset(
        {"n_estimators", "max_depth", "min_samples_leaf", "max_features", "max_samples"}
    ),
    "hist_gbm": frozenset(
        {
            "learning_rate",
            "max_iter",
            "max_depth",
            "max_leaf_nodes",
            "min_samples_leaf",
            "l2_regularization",
            "max_features",
        }
    ),
}

# Whether a candidate standardizes its inputs when the config does not say.
DEFAULT_SCALE: dict[str, bool] = {
    "ridge": True,
    "poly2": True,
    "random_forest": False,
    "hist_gbm": False,
}

ParamValue = bool | int | float | str | None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(_Strict):
    """Which part of the snapshot to model."""

    tickers: list[str] | None = Field(
        default=None,
        min_length=1,
        description="Only these tickers (e.g. one, for a per-stock model).",
    )
    min_rows: int | None = Field(
        default=None,
        ge=1,
        description="Minimum history per ticker; overrides the data layer's default.",
    )
    per_ticker: bool = Field(
        default=False,
        description="One model per ticker of `tickers`, each registered as <model name>-<ticker> "
        "and trained in parallel (the kubeline-training-per-ticker pipeline).",
    )

    @model_validator(mode="after")
    def _per_ticker_names_them(self) -> DataConfig:
        if self.per_ticker and not self.tickers:
            raise ValueError(
                "per_ticker needs the tickers listed: set data.tickers to the tickers to train "
                "one model each for"
            )
        return self

    @field_validator("tickers")
    @classmethod
    def _unique_tickers(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("tickers must not repeat")
        return value


class SplitConfig(_Strict):
    """How the time axis is cut into training, validation folds and holdout."""

    holdout_fraction: float = Field(default=0.2, gt=0.0, lt=0.5)
    n_splits: int = Field(default=4, ge=2)
    gap: int | None = Field(
        default=None, ge=0, description="Purge gap in bars; default: the horizon."
    )


class Candidate(_Strict):
    """One model family to tune: a built-in name or any regressor by import path."""

    name: BuiltinModel | None = None
    estimator: str | None = Field(default=None, description="e.g. sklearn.linear_model.Lasso")
    params: dict[str, list[ParamValue]] = Field(default_factory=dict)
    scale: bool | None = Field(default=None, description="Standardize inputs; default per model.")

    @field_validator("params", mode="before")
    @classmethod
    def _scalars_are_one_value_grids(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: v if isinstance(v, list) else [v] for k, v in value.items()}
        return value

    @field_validator("estimator")
    @classmethod
    def _estimator_importable(cls, value: str | None) -> str | None:
        if value is not None:
            _estimator_params(value)
        return value

    @field_validator("params")
    @classmethod
    def _grids_valid(
        cls, value: dict[str, list[ParamValue]], info: ValidationInfo
    ) -> dict[str, list[ParamValue]]:
        name, estimator = info.data.get("name"), info.data.get("estimator")
        allowed = (
            BUILTIN_PARAMS[name] if name else _estimator_params(estimator) if estimator else None
        )
        for key, values in value.items():
            if allowed is not None and key not in allowed:
                raise PydanticCustomError(
                    "unknown_param",
                    "unknown parameter for {model}; allowed: {allowed}",
                    {"key": key, "model": name or estimator, "allowed": ", ".join(sorted(allowed))},
                )
            if not values:
                raise PydanticCustomError(
                    "empty_grid", "give at least one value to try", {"key": key}
                )
        return value

    @model_validator(mode="after")
    def _name_xor_estimator(self) -> Candidate:
        if (self.name is None) == (self.estimator is None):
            raise ValueError(
                "give exactly one of 'name' (ridge, poly2, random_forest, hist_gbm) "
                "or 'estimator' (an import path such as sklearn.linear_model.Lasso)"
            )
        return self

    @property
    def label(self) -> str:
        """A short display name: the built-in name or the estimator's class name."""
        return self.name or str(self.estimator).rsplit(".", 1)[-1]

    @property
    def scaled(self) -> bool:
        """Whether inputs are standardized, resolving the per-model default."""
        if self.scale is not None:
            return self.scale
        return DEFAULT_SCALE.get(self.name or "", False)


def resolve_estimator(path: str) -> type:
    """Import ``package.module.Class`` and return the class, or raise ValueError saying why."""
    module_name, _, class_name = path.rpartition(".")
    if not module_name or not class_name:
        raise ValueError(f"{path!r} is not an import path like sklearn.linear_model.Lasso")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import module {module_name!r} ({exc}); is it installed?") from exc
    cls = getattr(module, class_name, None)
    if cls is None:
        raise ValueError(f"module {module_name!r} has no attribute {class_name!r}")
    if not inspect.isclass(cls):
        raise ValueError(f"{path!r} is not a class")
    return cls


@functools.cache
def _estimator_params(path: str) -> frozenset[str]:
    """Check that the path names a scikit-learn-compatible regressor; return its parameters."""
    cls = resolve_estimator(path)
    if not (callable(getattr(cls, "fit", None)) and callable(getattr(cls, "predict", None))):
        raise ValueError(f"{path} has no fit/predict methods; it is not a regressor")
    try:
        instance = cls()
    except Exception as exc:
        raise ValueError(f"{path}() cannot be built without arguments: {exc}") from exc
    if not callable(getattr(instance, "get_params", None)):
        raise ValueError(f"{path} has no get_params(); it is not scikit-learn compatible")
    from sklearn.base import is_regressor  # only configs naming a custom estimator pay this

    # fit/predict is not enough: a clusterer or a classifier has both and would train on the
    # target as if it were labels. scikit-learn's estimator tags say what the class is.
    if not is_regressor(instance):
        kind = _estimator_kind(instance)
        raise ValueError(
            f"{path} is {kind}, not a regressor; name a regressor such as "
            "sklearn.linear_model.Lasso"
        )
    return frozenset(instance.get_params(deep=False))


def _estimator_kind(instance: Any) -> str:
    """``a classifier``, ``a clusterer``...: what scikit-learn's tags call the estimator."""
    from sklearn.utils import get_tags

    try:
        kind = get_tags(instance).estimator_type
    except Exception:  # a class outside scikit-learn may have no tags at all
        kind = None
    return f"a {kind}" if kind else "not tagged as any kind of estimator"


def _default_candidates() -> list[Candidate]:
    return [
        Candidate(name="ridge", params={"alpha": [0.1, 1.0, 10.0, 100.0]}),
        Candidate(name="hist_gbm", params={"learning_rate": [0.05, 0.1], "max_leaf_nodes": [15]}),
    ]


class GateConfig(_Strict):
    """When a newly trained model may become the champion."""

    metric: MetricName = "rmse"
    min_improvement: float = Field(default=0.0, ge=0.0)
    # "best": the strongest naive forecast on the gate metric, so the gate never picks a straw man.
    baseline: BaselineName = "best"
    min_directional_accuracy: float | None = Field(
        default=None, ge=0.0, le=1.0, description="Also require this holdout hit rate (0.52)."
    )
    min_backtest_edge: float | None = Field(
        default=None,
        description="Also require the backtest's Sharpe to beat buy-and-hold's by this much.",
    )
    # On by default: without it, a model of a pure random walk beats the constant forecast on
    # about half of all holdouts, by luck. null turns it off.
    max_p_value: float | None = Field(
        default=0.05,
        gt=0.0,
        lt=1.0,
        description="Require the gain over the baseline to be significant at this level "
        "(one-sided Diebold-Mariano test on per-date losses); null = off.",
    )


class BacktestConfig(_Strict):
    """The long-or-flat trading simulation on holdout predictions (return targets only)."""

    enabled: bool = True
    # Charged per unit of position change, so a strategy that trades every day is not free.
    cost_bps: float = Field(default=5.0, ge=0.0, description="Cost per position change, in bps.")


class MonitorConfig(_Strict):
    """When ``kubeline monitor`` calls the champion drifted or decayed."""

    # Wasserstein distance, normed by the reference's standard deviation: a size of shift, not
    # a significance. p-value tests (Kolmogorov-Smirnov) call every feature drifted on windows
    # of a few thousand rows, where any difference is significant; a distance does not grow
    # with the window. PSI is the other distance Evidently offers; it bins, and heavy-tailed
    # returns put most rows in a few bins.
    drift_method: Literal["wasserstein", "psi"] = "wasserstein"
    # Evidently's default (0.1) is made for generic tables; daily market features move that much
    # between ordinary years. Measured on the demo: the holdout year's features (same tickers,
    # nothing planted) score 0.11-0.20 on 9 of 14 features, the planted regime change (2.5x
    # volatility) 1.0-3.3 on every feature that scales with volatility. 0.3 tells them apart.
    drift_threshold: float = Field(
        default=0.3,
        gt=0.0,
        description="A column drifted when its distance exceeds this.",
    )
    drifted_share: float = Field(
        default=0.3,
        gt=0.0,
        le=1.0,
        description="The window drifted when at least this share of the model's features did.",
    )
    allowed_decay: float = Field(
        default=0.25,
        ge=0.0,
        description="Decayed when the window's error exceeds the holdout's by more than this "
        "share (0.25: 25% worse), or no longer beats every naive forecast on the same rows.",
    )
    min_rows: int = Field(
        default=200, ge=1, description="Fewer rows in the window: insufficient-data."
    )
    # Off unless asked: starting a training run spends a cluster's time and may replace the
    # champion, so an operator opts in (and the demo's drift check must not start one).
    retrain: Literal["off", "manual", "auto"] = Field(
        default="off",
        description="On drift/decay: off; manual (record a recommendation for `kubeline "
        "retrain --approve`); auto (start the training pipeline).",
    )
    # Two: one noisy window is not a trend; a daily CronJob then acts on the second day.
    consecutive: int = Field(
        default=2, ge=1, description="Breaching checks of the same model in a row before acting."
    )
    cooldown: str = Field(
        default="24h",
        description="After a retraining starts, none again for this long (24h, 7d).",
    )

    @field_validator("cooldown")
    @classmethod
    def _cooldown_is_a_duration(cls, value: str) -> str:
        from kubeline.durations import parse_duration

        if parse_duration(value) is None:
            raise ValueError(f"{value!r} is not a duration; give hours or days, e.g. 24h or 7d")
        return value

    @field_validator("retrain", mode="before")
    @classmethod
    def _yaml_off_is_off(cls, value: Any) -> Any:
        # YAML 1.1 reads an unquoted `off` as false: that is what the writer meant.
        return "off" if value is False else value


class RunConfig(_Strict):
    """Everything one training run needs besides the data and the settings."""

    model_name: str | None = Field(default=None, min_length=1)
    data: DataConfig = Field(default_factory=DataConfig)
    target: TargetName = "next_return"
    horizon: int = Field(default=1, ge=1)
    features: list[str] | None = Field(default=None, min_length=1)
    split: SplitConfig = Field(default_factory=SplitConfig)
    models: Annotated[list[Candidate], Field(min_length=1)] = Field(
        default_factory=_default_candidates
    )
    selection_metric: MetricName = "rmse"
    gate: GateConfig = Field(default_factory=GateConfig)
    backtest: BacktestConfig = Field(default_factory=BacktestConfig)
    monitor: MonitorConfig = Field(default_factory=MonitorConfig)
    seed: int = 42

    @field_validator("features")
    @classmethod
    def _unique_features(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("features must not repeat")
        # Checked here, not in the features step, so `kubeline run` refuses before any step.
        from kubeline.features import FEATURES

        unknown = [name for name in value or () if name not in FEATURES]
        if unknown:
            raise ValueError(
                f"unknown feature(s) {', '.join(unknown)}; choose from {', '.join(FEATURES)}"
            )
        return value

    @property
    def target_kind(self) -> TargetKind:
        """return, log_return or level: what the target measures."""
        return TARGETS[self.target].kind

    @property
    def purge_gap(self) -> int:
        """Bars left out between training and validation/holdout (default: the horizon)."""
        return self.horizon if self.split.gap is None else self.split.gap

    @classmethod
    def from_yaml_text(cls, text: str, source: str = "<string>") -> RunConfig:
        """Parse and validate YAML text; errors name ``source`` and the bad key path."""
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{source}: not valid YAML: {exc}") from exc
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ConfigError(
                f"{source}: a run config is a mapping of keys, got {type(raw).__name__}",
                hint=f"allowed top-level keys: {', '.join(cls.model_fields)}",
            )
        return cls.from_dict(raw, source=source)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "<dict>") -> RunConfig:
        """Validate an already-parsed mapping."""
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise ConfigError(_describe(exc, source)) from None

    def to_yaml(self) -> str:
        """Dump as YAML that loads back to an equal config."""
        data = self.model_dump(mode="json")
        # A candidate is either a name or an estimator; dropping the unset one keeps it readable.
        data["models"] = [{k: v for k, v in m.items() if v is not None} for m in data["models"]]
        return yaml.safe_dump(data, sort_keys=False)


def load_run_config(path: str | Path | None) -> RunConfig:
    """Load a run config file; None means all defaults."""
    if path is None:
        return RunConfig()
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: run config not found",
            hint="pass an existing YAML file, e.g. configs/default.yaml",
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read run config: {exc}") from None
    return RunConfig.from_yaml_text(text, source=str(path))


def _describe(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors():
        loc = err["loc"]
        if "key" in err.get("ctx", {}):
            loc = (*loc, err["ctx"]["key"])
        where = _loc_path(loc) or "(top level)"
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(loc[:-1])
            message = "unknown key" + (f"; allowed: {', '.join(allowed)}" if allowed else "")
        lines.append(f"{source}: {where}: {message}")
    return "\n".join(lines)


def _loc_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _allowed_keys(loc: tuple[int | str, ...]) -> list[str]:
    """Field names of the model found at ``loc`` inside RunConfig (list indexes skipped)."""
    model: type[BaseModel] | None = RunConfig
    for part in loc:
        if isinstance(part, int) or model is None:
            continue
        field = model.model_fields.get(part)
        model = _nested_model(field.annotation) if field else None
    return list(model.model_fields) if model else []


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, list, typing.Annotated):
        for arg in get_args(annotation):
            found = _nested_model(arg)
            if found:
                return found
    return None
