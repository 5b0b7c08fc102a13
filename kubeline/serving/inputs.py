"""Request bodies turned into feature frames, each problem a 4xx naming the field and the row.

Four shapes arrive: rows of features (``/predict``, a strict pydantic model generated from the
served version's feature list), a ticker's bars (``/predict_history``: the features are computed
by ``kubeline.features``, the code training used), MLflow's scoring protocol (``/invocations``:
parsed by MLflow's own scoring-server parser, so a body means what ``mlflow models serve`` takes
it to mean) and KServe's V2 tensors (one per feature). All end as a float frame whose columns
are the model's features, in its order; BentoML is not imported here.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from kubeline.errors import KubelineError, Problem, RequestError

if TYPE_CHECKING:
    import pandas as pd
    import polars as pl

    from kubeline.model import ModelCard

# Strict: JSON false is not 0.0, "1.5" is not 1.5; NaN and inf (which Python's JSON reader
# accepts as NaN/Infinity) are refused; a misspelt or extra field is an error, not ignored.
STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


def row_model(feature_names: list[str], example: dict[str, float] | None = None) -> type[BaseModel]:
    """One row of model inputs: every feature, a finite number, nothing else."""
    fields: dict[str, Any] = {name: (float, ...) for name in feature_names}
    extra: dict[str, Any] | None = {"example": example} if example else None
    config = ConfigDict(**STRICT, json_schema_extra=extra)
    return create_model("FeatureRow", __config__=config, **fields)


def predict_request_model(
    feature_names: list[str], max_rows: int, example: list[dict[str, float]]
) -> type[BaseModel]:
    """The ``/predict`` body: ``{"rows": [...]}``, 1 to ``max_rows`` rows."""
    row = row_model(feature_names, example[0] if example else None)
    rows = Annotated[list[row], Field(min_length=1, max_length=max_rows)]  # type: ignore[valid-type]
    examples: dict[str, Any] = {"example": {"rows": example}}
    config = ConfigDict(extra="forbid", strict=True, json_schema_extra=examples)
    return create_model("PredictRequest", __config__=config, rows=(rows, ...))


class Prediction(BaseModel):
    """What every native endpoint answers: the version that predicted, one number per row."""

    model_name: str
    model_version: str
    predictions: list[float]


class HistoryPrediction(Prediction):
    ticker: str
    date: str  # the last bar's date: the prediction is for the bar after it
    features: dict[str, float]  # the feature vector the prediction was made from


BarValue = float | int | str | None


def history_request_model(max_rows: int, example: dict[str, Any]) -> type[BaseModel]:
    """The ``/predict_history`` body: a ticker and its bars, oldest first."""
    bars = Annotated[
        list[dict[str, BarValue]],
        Field(
            min_length=1,
            max_length=max_rows,
            description="Bars oldest first: date and close, optionally open, high, low, "
            "volume, adj_close, with any column spelling and date format ingest reads.",
        ),
    ]
    config = ConfigDict(extra="forbid", json_schema_extra={"example": example})
    return create_model(
        "HistoryRequest",
        __config__=config,
        ticker=(Annotated[str, Field(min_length=1, max_length=64)], "TICKER"),
        bars=(bars, ...),
    )


def rows_frame(rows: list[Any], feature_names: list[str]) -> pd.DataFrame:
    """Validated rows (pydantic models or dicts) as a float frame in the model's column order."""
    import numpy as np
    import pandas as pd

    values = np.array(
        [[getattr(r, n) if not isinstance(r, dict) else r[n] for n in feature_names] for r in rows],
        dtype=float,
    ).reshape(len(rows), len(feature_names))
    return pd.DataFrame(values, columns=feature_names)


def check_frame(
    frame: pd.DataFrame, feature_names: list[str], max_rows: int, where: str = "row"
) -> pd.DataFrame:
    """A parsed frame made exactly the model's inputs: every feature, finite, nothing else."""
    import numpy as np
    import pandas as pd

    problems: list[dict[str, object]] = []
    columns = [str(c) for c in frame.columns]
    missing = [n for n in feature_names if n not in columns]
    extra = [c for c in columns if c not in feature_names]
    problems += [{"loc": [n], "msg": "feature missing"} for n in missing]
    problems += [{"loc": [c], "msg": "not a feature of this model"} for c in extra]
    if problems:
        raise RequestError(_summary(problems), problems)
    if len(frame) == 0:
        raise RequestError("no rows given", [{"loc": [], "msg": "at least one row is needed"}])
    if len(frame) > max_rows:
        raise RequestError(
            f"{len(frame)} rows is more than the {max_rows} one request may carry",
            [{"loc": [], "msg": f"at most {max_rows} rows"}],
            status=413,
        )
    frame = frame.reset_index(drop=True)
    out = {}
    for name in feature_names:
        column = frame[name]
        numeric = pd.to_numeric(column, errors="coerce") if column.dtype == object else column
        is_bool = column.map(lambda v: isinstance(v, bool | np.bool_))
        bad = ~np.isfinite(np.asarray(numeric, dtype=float)) | np.asarray(is_bool, dtype=bool)
        for i in np.flatnonzero(bad)[:20]:
            problems.append(
                {"loc": [where, int(i), name], "msg": f"must be a finite number, got {column[i]!r}"}
            )
        out[name] = np.asarray(numeric, dtype=float)
    if problems:
        raise RequestError(_summary(problems), problems)
    return pd.DataFrame(out, columns=feature_names)


def _summary(problems: list[dict[str, object]]) -> str:
    shown = "; ".join(f"{_loc(p['loc'])}: {p['msg']}" for p in problems[:5])
    more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
    return f"{shown}{more}"


def _loc(loc: object) -> str:
    """``["rows", 3, "ret_1"]`` -> ``rows[3].ret_1``: the field and the row, as a client reads."""
    out = ""
    for part in loc if isinstance(loc, list | tuple) else [loc]:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "body"


def describe_validation_errors(errors: list[dict[str, Any]]) -> tuple[str, list[dict[str, object]]]:
    """Pydantic's errors as one sentence naming each field and row, and their locations."""
    detail: list[dict[str, object]] = [
        {"loc": list(e.get("loc", [])), "msg": str(e.get("msg", ""))} for e in errors
    ]
    return _summary(detail), detail


# --- /invocations: MLflow's scoring protocol ---------------------------------------------


def mlflow_frame(body: bytes, content_type: str, schema: Any = None) -> pd.DataFrame:
    """An MLflow scoring request (JSON in any of its four keys, or CSV) as a frame.

    The parsing is MLflow's own (``mlflow.pyfunc.scoring_server``), so a body means here what
    it means to ``mlflow models serve``; its errors become a 400 with MLflow's message.
    """
    from io import StringIO

    import pandas as pd
    from mlflow.exceptions import MlflowException
    from mlflow.pyfunc import scoring_server as mlflow_scoring

    mime, _, params = content_type.partition(";")
    mime = mime.strip().lower()
    charset = params.partition("charset=")[2].strip().lower() or "utf-8"
    if charset != "utf-8":
        raise RequestError("the scoring protocol takes UTF-8 bodies only", status=415)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestError(
            f"the body is not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None
    try:
        if mime == mlflow_scoring.CONTENT_TYPE_CSV:
            parsed = mlflow_scoring.parse_csv_input(StringIO(text))
        elif mime == mlflow_scoring.CONTENT_TYPE_JSON:
            data, _ = mlflow_scoring._split_data_and_params(text)
            # Tensor-style keys need the signature to become a table (MLflow passes it too);
            # tables are parsed untyped so that a bad value is reported with its row here.
            tensor = bool({mlflow_scoring.INPUTS, mlflow_scoring.INSTANCES} & set(data))
            parsed = mlflow_scoring.infer_and_parse_data(data, schema if tensor else None)  # type: ignore[arg-type]
        else:
            raise RequestError(
                f"/invocations takes application/json or text/csv, not {mime or 'no content type'}",
                status=415,
            )
    except MlflowException as exc:
        raise RequestError(" ".join(exc.message.split())[:500]) from None
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise RequestError(f"the body is not a table MLflow's protocol describes: {exc}") from None
    if isinstance(parsed, list) and parsed and all(isinstance(r, dict) for r in parsed):
        parsed = pd.DataFrame.from_records(parsed)  # "inputs"/"instances" as records
    if isinstance(parsed, dict):  # "inputs"/"instances" as columns: {feature: [values]}
        try:
            parsed = pd.DataFrame(parsed)
        except ValueError as exc:
            raise RequestError(f"the columns given do not make a table: {exc}") from None
    if not isinstance(parsed, pd.DataFrame):
        raise RequestError(
            "the body is not a table: give named columns "
            "(dataframe_split, dataframe_records, or inputs/instances as records or columns)"
        )
    return parsed


# --- KServe Open Inference Protocol (V2) ---------------------------------------------------

V2_DATATYPES = ("FP32", "FP64")


Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]  # not true, not "1.5"


class V2Tensor(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    shape: Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1, max_length=2)]
    datatype: Literal["FP32", "FP64"]
    data: list[Number | list[Number]]
    parameters: dict[str, Any] | None = None


class V2Request(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[V2Tensor] = Field(min_length=1)
    outputs: list[dict[str, Any]] | None = None


def v2_frame(request: V2Request, feature_names: list[str], max_rows: int) -> pd.DataFrame:
    """One V2 input tensor per feature (shape [N] or [N, 1], FP32/FP64) as a frame."""
    import pandas as pd

    problems: list[dict[str, object]] = []
    columns: dict[str, list[Any]] = {}
    for i, tensor in enumerate(request.inputs):
        where = ["inputs", i]
        if tensor.datatype not in V2_DATATYPES:
            problems.append(
                {
                    "loc": [*where, "datatype"],
                    "msg": f"must be FP32 or FP64, not {tensor.datatype!r}",
                }
            )
        shape = tensor.shape
        if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)) or shape[0] < 0:
            problems.append(
                {"loc": [*where, "shape"], "msg": f"must be [N] or [N, 1], not {shape}"}
            )
            continue
        data = [v[0] if isinstance(v, list) and len(v) == 1 else v for v in tensor.data]
        if len(data) != shape[0]:
            problems.append(
                {"loc": [*where, "data"], "msg": f"holds {len(data)} values, shape says {shape[0]}"}
            )
        if tensor.name in columns:
            problems.append({"loc": [*where, "name"], "msg": f"{tensor.name!r} given twice"})
        columns[tensor.name] = data
    if problems:
        raise RequestError(_summary(problems), problems)
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        raise RequestError(
            "the input tensors hold different numbers of rows",
            [{"loc": ["inputs"], "msg": str(sorted(lengths))}],
        )
    frame = pd.DataFrame(columns)
    return check_frame(frame, feature_names, max_rows, where="data")


def v2_metadata(name: str, version: str, feature_names: list[str]) -> dict[str, Any]:
    """``GET /v2/models/{model}``: the inputs (one FP64 [-1] tensor per feature), the output."""
    return {
        "name": name,
        "versions": [version],
        "platform": "kubeline-sklearn",
        "inputs": [{"name": n, "datatype": "FP64", "shape": [-1]} for n in feature_names],
        "outputs": [{"name": "predictions", "datatype": "FP64", "shape": [-1]}],
    }


def v2_response(
    name: str, version: str, predictions: list[float], request_id: str | None
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "model_name": name,
        "model_version": version,
        "outputs": [
            {
                "name": "predictions",
                "datatype": "FP64",
                "shape": [len(predictions)],
                "data": predictions,
            }
        ],
    }
    if request_id is not None:
        out["id"] = request_id
    return out


# --- /predict_history: bars through the training feature code -----------------------------


def bars_needed(card: ModelCard) -> int:
    """The fewest bars whose last one has every feature of the model (its longest window)."""
    from kubeline import features

    return max(features.FEATURES[f].window for f in card.feature_names)


def example_bars(card: ModelCard, ticker: str = "AAA") -> dict[str, Any]:
    """A ``/predict_history`` body that works as is: a smooth made-up series, long enough."""
    import datetime as dt

    n = bars_needed(card) + 10
    day, close = dt.date(2024, 1, 2), 100.0
    bars: list[dict[str, Any]] = []
    while len(bars) < n:
        if day.weekday() < 5:
            close *= 1.0 + 0.01 * math.sin(len(bars))
            bars.append(
                {
                    "date": day.isoformat(),
                    "open": round(close, 4),
                    "high": round(close * 1.01, 4),
                    "low": round(close * 0.99, 4),
                    "close": round(close, 4),
                    "volume": 1_000_000 + 1000 * len(bars),
                }
            )
        day += dt.timedelta(days=1)
    return {"ticker": ticker, "bars": bars}


def history_features(
    ticker: str, bars: list[dict[str, Any]], card: ModelCard
) -> tuple[pl.DataFrame, str]:
    """The feature row of the last bar, computed by ``kubeline.features`` as training does.

    The bars are read as ingest reads a file (column spellings, date formats) and checked as
    validate checks a ticker; dates must rise strictly, and there must be enough bars for
    every feature window. Returns the one-row features frame and the last bar's date.
    """
    import polars as pl

    from kubeline import features
    from kubeline.data import schema as s
    from kubeline.data.dates import parse_date_column
    from kubeline.data.layouts import match_columns
    from kubeline.data.validate import validate

    keys = list(dict.fromkeys(k for bar in bars for k in bar))
    mapping = match_columns(keys)  # canonical -> the spelling the client used
    known = set(mapping.values())
    problems: list[dict[str, object]] = [
        {
            "loc": ["bars", _first_with(bars, k), k],
            "msg": "not a bar field (date, close, open, high, low, volume, adj_close)",
        }
        for k in keys
        if k not in known
    ]
    problems += [
        {"loc": ["bars", 0, name], "msg": "field required"}
        for name in (s.DATE, s.CLOSE)
        if name not in mapping
    ]
    if s.TICKER in mapping:
        problems.append(
            {"loc": ["bars", 0, mapping[s.TICKER]], "msg": "give the ticker once, beside the bars"}
        )
    if problems:
        raise RequestError(_summary(problems), problems)
    values = [c for c in s.VALUES if c in mapping]
    columns: dict[str, list[Any]] = {s.DATE: [], **{c: [] for c in values}}
    for i, bar in enumerate(bars):
        date = bar.get(mapping[s.DATE])
        if not isinstance(date, str | int) or isinstance(date, bool):
            problems.append(
                {"loc": ["bars", i, mapping[s.DATE]], "msg": f"must be a date, got {date!r}"}
            )
        columns[s.DATE].append(None if date is None else str(date))
        for c in values:
            v = bar.get(mapping[c])
            ok = v is None or (
                isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
            )
            if not ok or (v is None and c == s.CLOSE):
                problems.append(
                    {"loc": ["bars", i, mapping[c]], "msg": f"must be a finite number, got {v!r}"}
                )
            columns[c].append(float(v) if ok and v is not None else None)
    if problems:
        raise RequestError(_summary(problems), problems)
    n = len(bars)
    frame = pl.DataFrame(
        {
            s.TICKER: [ticker] * n,
            **columns,
            s.SOURCE_FILE: ["bars"] * n,
            s.SOURCE_ROW: list(range(n)),
        },
        schema_overrides={s.DATE: pl.String, **{c: pl.Float64 for c in values}},
    )
    try:
        frame, date_problems = parse_date_column(frame, s.DATE)
    except KubelineError as exc:
        raise RequestError(exc.message, [{"loc": ["bars", "date"], "msg": exc.message}]) from None
    _raise_problems(date_problems, mapping)
    dates = frame.get_column(s.DATE).to_list()
    for i in range(1, n):
        if dates[i] <= dates[i - 1]:
            what = "repeats" if dates[i] == dates[i - 1] else "is before"
            problems.append(
                {
                    "loc": ["bars", i, mapping[s.DATE]],
                    "msg": f"{dates[i]} {what} the previous bar's date {dates[i - 1]}: bars go oldest first, one per date",
                }
            )
    if problems:
        raise RequestError(_summary(problems), problems)
    checked = validate(frame, min_rows=1)
    _raise_problems(checked.errors, mapping)
    plan = features.plan(card.feature_names, [s.TICKER, s.DATE, *values], card.target, card.horizon)
    if plan.skipped:
        lacking = sorted({c for cols in plan.skipped.values() for c in cols})
        raise RequestError(
            f"the model's features need bar field(s) {', '.join(lacking)}",
            [{"loc": ["bars", 0, c], "msg": "field required by this model"} for c in lacking],
        )
    needed = bars_needed(card)
    table, _ = features.build_polars(
        checked.clean, features=card.feature_names, target=card.target, horizon=card.horizon
    )
    last = features.latest(table)
    row = last.select(card.feature_names)
    undefined = [
        c
        for c in card.feature_names
        if not all(v is not None and math.isfinite(v) for v in row.get_column(c))
    ]
    if undefined and n < needed:
        raise RequestError(
            f"{n} bars are too few: the features need at least {needed} "
            f"({', '.join(undefined)} cannot be computed yet)",
            [{"loc": ["bars"], "msg": f"at least {needed} bars needed, got {n}"}],
        )
    # Enough bars can still give a feature no number (a volume of zero throughout the window
    # divides by zero); the model must not be asked, and the client is told which feature.
    if undefined:
        raise RequestError(
            f"these bars give feature(s) {', '.join(undefined)} no finite value "
            "(e.g. a volume of zero throughout the window)",
            [{"loc": ["bars"], "msg": f"feature {c} is not a finite number"} for c in undefined],
        )
    return row, str(last.get_column(s.DATE)[0])


def _first_with(bars: list[dict[str, Any]], key: str) -> int:
    return next(i for i, bar in enumerate(bars) if key in bar)


def _raise_problems(found: list[Problem], mapping: dict[str, str]) -> None:
    errors = [p for p in found if p.severity == "error"]
    if not errors:
        return
    detail: list[dict[str, object]] = []
    for p in errors:
        loc: list[object] = ["bars"]
        if p.row is not None:
            loc.append(p.row)
        if p.column:
            loc.append(mapping.get(p.column, p.column))
        detail.append({"loc": loc, "msg": p.message})
    raise RequestError(_summary(detail), detail)
