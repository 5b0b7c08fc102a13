"""The kubeline command line: parses, calls the package, prints. No logic of its own.

Heavy libraries (mlflow, kfp, scikit-learn) are imported inside the commands that need them,
so ``kubeline --help`` answers at once.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from kubeline import __version__
from kubeline.errors import KubelineError, os_error_message

console = Console()
err_console = Console(stderr=True)


def error_exit(exc: BaseException) -> typer.Exit:
    """The one place an error becomes what the user sees: one message, no traceback, a code.

    Kubeline's own errors, OS errors (a path that is a file, not writable, missing) and invalid
    settings all end here; a kubeline error masks the credentials inside URIs itself.
    """
    from pydantic import ValidationError

    if isinstance(exc, OSError):
        exc = os_error_message(exc)
    elif isinstance(exc, ValidationError) and exc.title == "Settings":
        from kubeline.settings import settings_error

        exc = settings_error(exc)
    code = exc.exit_code if isinstance(exc, KubelineError) else 1
    err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
    return typer.Exit(code)


class KubelineGroup(TyperGroup):
    """Every command runs inside this group: its errors are reported by ``error_exit``.

    Boolean flags take no value, so their help shows no ``<bool>`` type.
    """

    # typer vendors its own click: its contexts and parameters are typed loosely here.
    def invoke(self, ctx: Any) -> Any:
        from pydantic import ValidationError

        try:
            return super().invoke(ctx)
        except (KubelineError, OSError, ValidationError) as exc:
            raise error_exit(exc) from None

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            _no_flag_type(command, ctx)
        return command

    def get_params(self, ctx: Any) -> Any:
        params = super().get_params(ctx)
        _no_flag_type(self, ctx, params)
        return params


def _no_flag_type(command: Any, ctx: Any, params: list[Any] | None = None) -> None:
    for param in params if params is not None else command.get_params(ctx):
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""


def _typer(help: str) -> typer.Typer:
    return typer.Typer(
        help=help,
        cls=KubelineGroup,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
    )


app = _typer("kubeline: the ML lifecycle for daily market data, as Kubeflow Pipelines components.")
data_app = _typer("Make and inspect data sets.")
app.add_typer(data_app, name="data")
images_app = _typer("Build the container images the steps run in.")
app.add_typer(images_app, name="images")
chart_app = _typer("The Helm chart (helm/kubeline) and the plain manifests made from it.")
app.add_typer(chart_app, name="chart")


def _print_version(value: bool) -> None:
    if value:
        print(f"kubeline {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    """kubeline: the ML lifecycle for daily market data, as Kubeflow Pipelines components."""
    # Settings are checked before any command runs, so a bad KUBELINE_* value stops every
    # command alike, not only the ones that happen to read it late in a step.
    _settings()


ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", help="YAML run config (see configs/); default: built-in defaults."),
]
ModelOption = Annotated[
    str | None, typer.Option("--model", help="Registered model name (default: from settings).")
]


def _settings() -> Any:
    from kubeline.settings import get_settings

    return get_settings()


def _config_text(config: Path | None) -> str:
    """The run config's YAML text, validated here so a bad key fails before any step runs."""
    if config is None:
        return ""
    from kubeline.runconfig import load_run_config

    load_run_config(config)
    return config.read_text()


MAX_WARNINGS_SHOWN = 20


def _print_warnings(warnings: list[Any]) -> None:
    """The first warnings, then how many more: a flood must not hide the summary line."""
    for problem in warnings[:MAX_WARNINGS_SHOWN]:
        err_console.print(f"[yellow]warning:[/] {escape(str(problem))}", highlight=False)
    if len(warnings) > MAX_WARNINGS_SHOWN:
        err_console.print(
            f"[yellow]warning:[/] ... and {len(warnings) - MAX_WARNINGS_SHOWN} more warnings",
            highlight=False,
        )


@data_app.command("generate")
def data_generate(
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help="Folder to write the data set to: new, empty, or an earlier `data generate` "
            "output (a folder holding other files is refused, never emptied).",
        ),
    ],
    tickers: Annotated[int, typer.Option(min=1, help="Number of tickers.")] = 20,
    years: Annotated[float, typer.Option(min=0.1, help="Years of trading days.")] = 5.0,
    seed: Annotated[
        int, typer.Option(min=0, help="Random seed (0 or more): the same seed, the same data.")
    ] = 7,
    layout: Annotated[
        Literal["yahoo", "kaggle", "long"], typer.Option(help="File layout to write.")
    ] = "yahoo",
    return_ar: Annotated[
        float | None,
        typer.Option(
            help="Planted lag-1 autocorrelation of daily returns, in (-1, 1); 0 = a random "
            "walk, with nothing to learn. Default: the planted signal of kubeline.data.generate."
        ),
    ] = None,
    drift: Annotated[
        datetime | None,
        typer.Option(
            formats=["%Y-%m-%d"],
            metavar="YYYY-MM-DD",
            help="Plant a regime change from this date on (volatility x2.5, volume x3), for "
            "`kubeline monitor` to find.",
        ),
    ] = None,
) -> None:
    """Write realistic synthetic daily OHLCV data (deterministic for a seed)."""
    from kubeline.data.generate import PLANTED_RETURN_AR, generate, write_dataset

    with console.status(f"generating {tickers} tickers x {years:g} years"):
        frame = generate(
            tickers=tickers,
            years=years,
            seed=seed,
            return_ar=PLANTED_RETURN_AR if return_ar is None else return_ar,
            drift_from=drift.date() if drift else None,
        )
        files = write_dataset(frame, out, layout)
    console.print(
        f"wrote {frame.height:,} rows for {tickers} tickers in {len(files)} files "
        f"({layout} layout) to [bold]{escape(str(out))}[/]"
    )


@app.command()
def validate(
    data: Annotated[str, typer.Argument(help="Local path or s3:// prefix of the raw files.")],
    config: ConfigOption = None,
) -> None:
    """Check raw data; print every problem by file, row and column; exit 3 if any is an error."""
    from kubeline.steps.validate import check

    result = check(data, _config_text(config))
    _print_warnings(result.warnings)
    result.raise_for_errors()
    summary = result.summary
    console.print(
        f"[green]ok[/]: {summary['rows']:,} rows, {summary['tickers']} tickers, "
        f"{summary['first_date']} to {summary['last_date']}, "
        f"{len(result.warnings)} warnings; data hash {summary['data_hash']}",
        highlight=False,
    )


@app.command()
def features(
    data: Annotated[str, typer.Option("--data", help="Local path or s3:// prefix.")],
    out: Annotated[str, typer.Option("--out", help="Parquet file to write (local or s3://).")],
    config: ConfigOption = None,
    content_hash: Annotated[
        bool, typer.Option("--hash", help="Also print the content hash of the clean data.")
    ] = False,
) -> None:
    """Ingest, validate and compute features in one memory-bounded pass, to one Parquet file."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from kubeline.steps.features import prepare

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as progress:
        task = progress.add_task("files", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        summary = prepare(
            data, out, _config_text(config), on_progress=advance, hash_content=content_hash
        )
    console.print(
        f"wrote {summary.rows:,} rows x {len(summary.features)} features for "
        f"{summary.tickers} tickers to [bold]{escape(str(out))}[/] in {summary.seconds:.1f} s"
        + (f" ({len(summary.warnings)} warnings)" if summary.warnings else ""),
        highlight=False,
    )
    if summary.content_hash:
        console.print(f"content hash of the clean data: {summary.content_hash}", highlight=False)
    _print_warnings(summary.warnings)


@app.command()
def predict(
    data: Annotated[
        str,
        typer.Option("--data", help="Local path or s3:// prefix of raw files (any ingest layout)."),
    ],
    out: Annotated[
        str, typer.Option("--out", help="File for the predictions: .parquet or .csv, or s3://.")
    ],
    version: Annotated[
        str | None, typer.Option("--version", help="Model version (default: the champion).")
    ] = None,
    model: ModelOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Score a whole data set with the champion (or --version), through training's feature code."""
    from kubeline.steps.predict import score

    with err_console.status("scoring"):
        result = score(
            data, out, model_name=model or "", version=version or "", settings=_settings()
        )
    if as_json:
        print(json.dumps(result.metadata(), indent=2))
        return
    _print_warnings(result.warnings)
    console.print(
        f"wrote {result.rows:,} predictions for {result.tickers} tickers "
        f"({result.first_date} to {result.last_date}) by {escape(result.model_name)} version "
        f"{result.model_version} to [bold]{escape(out)}[/]",
        highlight=False,
    )
    if result.incomplete_rows:
        console.print(
            f"{result.incomplete_rows:,} rows not scored: a feature is unknown there (each "
            "ticker's first bars, which the feature windows need as history)",
            highlight=False,
        )
    if result.dropped_tickers:
        console.print(
            f"{len(result.dropped_tickers)} tickers not scored, too short for the feature "
            f"windows: {escape(', '.join(result.dropped_tickers))}",
            highlight=False,
        )


# A group whose callback is the check itself, so `kubeline monitor --current X` is unchanged
# and `kubeline monitor history` is a subcommand beside it.
monitor_app = typer.Typer(
    cls=KubelineGroup, no_args_is_help=False, pretty_exceptions_enable=False, add_completion=False
)
app.add_typer(monitor_app, name="monitor")


@monitor_app.callback(invoke_without_command=True)
def monitor(
    ctx: typer.Context,
    current: Annotated[
        str | None,
        typer.Option(
            "--current",
            help="Judge this market data (any ingest layout, local or s3://) instead of the "
            "inference log; its bars after the model's holdout (or --since) are the window.",
        ),
    ] = None,
    truth: Annotated[
        str | None,
        typer.Option(
            "--truth",
            help="Market data whose later bars give the logged predictions their realized "
            "targets (joined by ticker and date), so decay can be judged.",
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="The window starts here: YYYY-MM-DD, an ISO time, or 24h / 7d before now.",
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option("--until", help="The inference log's window ends before this time."),
    ] = None,
    version: Annotated[
        str | None, typer.Option("--version", help="Model version (default: the champion).")
    ] = None,
    model: ModelOption = None,
    config: ConfigOption = None,
    out: Annotated[
        str | None,
        typer.Option("--out", help="Folder for report.html and summary.json (default: dated)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Check the champion for drift and decay; exit 0 ok, 10 drift, 11 decay, 12 too little data.

    The last line printed is the decision: ok, drift, decay or insufficient-data.
    """
    if ctx.invoked_subcommand is not None:
        return
    from kubeline.steps.monitor import check

    with err_console.status("checking"):
        summary = check(
            current=current,
            truth=truth,
            since=since,
            until=until,
            version=version,
            model_name=model,
            config=_config_text(config),
            out=out,
            settings=_settings(),
        )
    if as_json:
        print(summary.to_json())
    else:
        console.print(
            f"{escape(summary.model_name)} version {summary.model_version} on "
            f"{summary.rows:,} rows of the {escape(summary.source)}"
            + (f" ({summary.window_start} to {summary.window_end})" if summary.rows else ""),
            highlight=False,
        )
        if summary.drift_rows:
            sampled = f", a sample of {summary.drift_rows:,}" if summary.sampled else ""
            console.print(
                f"drift ({summary.drift_method} > {summary.drift_threshold:g}{sampled}): "
                f"{summary.drifted_share:.0%} of the features drifted"
                + (
                    f": {escape(', '.join(summary.drifted_features))}"
                    if summary.drifted_features
                    else ""
                )
                + f"; prediction {summary.prediction_drift:.3f}",
                highlight=False,
            )
        if summary.rmse is not None:
            naive = ", ".join(
                f"{k.replace('_', ' ')} {v:.5g}" for k, v in summary.naive_rmse.items()
            )
            console.print(
                f"on {summary.truth_rows:,} rows with a realized target: rmse {summary.rmse:.5g} "
                f"(holdout {summary.holdout_rmse:.5g}); naive {naive}",
                highlight=False,
            )
        if summary.skew_rows:
            console.print(escape(summary.skew_note), soft_wrap=True, highlight=False)
        console.print(f"{escape(summary.reason)}", highlight=False)
        if summary.report:
            console.print(f"report: {escape(summary.report)}", soft_wrap=True, highlight=False)
        if summary.retrain_note:
            console.print(escape(summary.retrain_note), soft_wrap=True, highlight=False)
        console.print(summary.decision, highlight=False)
    raise typer.Exit(summary.exit_code)


@monitor_app.command("history")
def monitor_history(
    last: Annotated[int, typer.Option("-n", "--last", min=1, help="How many checks to show.")] = 20,
    model: ModelOption = None,
    plot: Annotated[
        str | None,
        typer.Option("--plot", help="Trend PNG (default: trend.png beside the checks)."),
    ] = None,
) -> None:
    """The last checks as a table, and a PNG of the drifted share and window RMSE over time."""
    from rich import box
    from rich.table import Table

    from kubeline.monitor.history import list_checks
    from kubeline.monitor.trend import COLUMNS, default_plot_path, recent, row, write_plot
    from kubeline.steps.monitor import checks_location
    from kubeline.storage import check_file_target, is_s3

    settings = _settings()
    if plot and not is_s3(plot):  # a wrong place fails before anything is listed
        check_file_target(plot, "--plot")
    location = checks_location(settings)
    checks = recent(list_checks(location, settings), last, model)
    if not checks:
        of = f" of model {model}" if model else ""
        console.print(f"no checks{escape(of)} under {escape(location)} yet", highlight=False)
        return
    # Folded, never cut with an ellipsis: the check id is what `--approve` and a search of the
    # checks' location need whole, and a CronJob's log is often 80 columns wide.
    # Light rules, not boxes: eight columns must fit a CronJob log's 80 without breaking words.
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    short = {"decision", "drifted", "rmse", "retrain"}  # words: never broken
    for name in COLUMNS:
        table.add_column(name, overflow="fold", no_wrap=name in short, min_width=len(name))
    for values in map(row, checks):
        table.add_row(*(escape(v) for v in values))
    console.print(table)
    written = write_plot(checks, plot or default_plot_path(location, settings), settings)
    console.print(f"trend: {escape(written)}", soft_wrap=True, highlight=False)


@app.command()
def retrain(
    approve: Annotated[
        str | None,
        typer.Option(
            "--approve",
            metavar="CHECK_ID",
            help="Start the retraining this check recommended (retrain: manual).",
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="Train with this run config instead of the check's."),
    ] = None,
) -> None:
    """List the pending retraining recommendations, or approve one (start its training)."""
    from kubeline.monitor import loop
    from kubeline.steps.monitor import checks_location

    settings = _settings()
    location = checks_location(settings)
    if approve is None:
        waiting = loop.pending(location, settings)
        if not waiting:
            console.print(f"no retraining waits for an approval under {escape(location)}")
            return
        for record in waiting:
            console.print(
                f"{escape(record.check_id)}  {escape(record.reason)}", soft_wrap=True,
                highlight=False,
            )  # fmt: skip
        console.print("approve one with `kubeline retrain --approve CHECK_ID`", highlight=False)
        return
    config_text = _config_text(config) if config is not None else None
    with err_console.status(f"retraining for check {approve}"):
        record = loop.approve(approve, settings, location=location, config_text=config_text)
    console.print(escape(record.line()), soft_wrap=True, highlight=False)
    if record.status == loop.Status.FAILED:
        raise typer.Exit(1)


@app.command()
def lineage(
    ident: Annotated[
        str,
        typer.Argument(
            metavar="ID",
            help="A model version (3 or NAME:3), an MLflow run id, a pipeline run id or a "
            "check id.",
        ),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the chain as JSON.")] = False,
) -> None:
    """The chain behind one id: pipeline run, MLflow run, data, version and its aliases, the
    days it served, the checks that judged it and the retrainings they started."""
    import dataclasses
    import json

    from kubeline.lineage_chain import chain, resolve

    settings = _settings()
    found = chain(settings, *resolve(settings, ident))
    if as_json:
        print(json.dumps(dataclasses.asdict(found), indent=2, default=str))
        return
    # Indented lines, each printed whole (soft_wrap): ids and paths cut at the terminal's width
    # could not be pasted into the next command.
    lines: list[tuple[int, str]] = []

    def add(depth: int, markup: str) -> None:
        lines.append((depth, markup))

    def missing(value: str | None) -> str:
        return escape(value) if value else "[dim]not recorded[/]"

    aliases = f" ({', '.join(found.aliases)})" if found.aliases else ""
    add(
        0,
        f"[bold]{escape(found.model_name)}[/] version [bold]{found.version}[/]{escape(aliases)}"
        f": gate {escape(found.gate or 'unknown')}"
        + (f" ({escape(found.gate_reason)})" if found.gate_reason else ""),
    )
    add(1, f"pipeline run: {missing(found.pipeline_run_id)}")
    add(1, f"MLflow run: {missing(found.mlflow_run_id)}")
    add(1, f"data: {missing(found.data)}; hash {missing(found.data_hash)}")
    add(1, f"source revision: {missing(found.git_revision)}")
    if found.triggered_by:
        add(1, f"started by check: {escape(found.triggered_by)}")
    history = " -> ".join(found.champion_history) or "none"
    add(1, f"champions of {escape(found.model_name)}, oldest first: {history}")
    if found.promoted_at:
        add(2, f"promoted at {escape(found.promoted_at)}")
    if found.rolled_back_at:
        add(2, f"rolled back at {escape(found.rolled_back_at)}")
    rows = sum(d.rows for d in found.served)
    add(1, f"served: {rows:,} predictions on {len(found.served)} day(s)")
    for day in found.served:
        add(
            2,
            f"{day.day} {day.first}-{day.last} UTC: {day.rows:,} rows ({', '.join(day.endpoints)})",
        )
    add(1, f"checks that judged it: {len(found.checks)}")
    for check in found.checks:
        add(
            2,
            f"{escape(check.check_id)}: {escape(check.decision)}, "
            f"{check.rows:,} rows of the {escape(check.source)}",
        )
        record = found.retrains.get(check.check_id)
        if record is not None:
            made = found.successors.get(check.check_id)
            add(3, escape(record.line()) + (f" -> version {made}" if made else ""))
    for depth, markup in lines:
        console.print("  " * depth + markup, soft_wrap=True, highlight=False)


@app.command("compile")
def compile_(
    out: Annotated[
        Path | None, typer.Option("--out", help="Folder for the specs (default: the package's).")
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Fail if the committed specs are stale.")
    ] = False,
) -> None:
    """Compile the pipelines to KFP v2 YAML (components use the KUBELINE_IMAGE image)."""
    from kubeline.errors import PipelineError
    from kubeline.runner import compile_pipelines, compiled_dir, stale_specs
    from kubeline.storage import check_folder_target

    if out is not None:
        check_folder_target(out, "--out")
    if check:
        stale = stale_specs(out or compiled_dir())
        if stale:
            raise PipelineError(
                f"compiled specs are stale: {', '.join(stale)}",
                hint="run `kubeline compile` and commit pipelines/compiled/",
            )
        console.print("compiled specs are up to date")
        return
    for path in compile_pipelines(out or compiled_dir()):
        console.print(f"wrote {escape(str(path))}")


def _run_pipeline(
    data: str,
    config_text: str,
    model_name: str,
    min_improvement: float | None,
    runner: str | None = None,
) -> Any:
    """Run the training pipeline with a live line per step; returns the run result."""
    from rich.live import Live
    from rich.table import Table

    from kubeline.runner import PIPELINE_STEPS, StepEvent, run_training
    from kubeline.runner.local import training_pipeline_for

    settings = _settings()
    steps = PIPELINE_STEPS[training_pipeline_for(config_text)]
    states: dict[str, str] = dict.fromkeys(steps, "[dim]waiting[/]")

    def render() -> Table:
        table = Table.grid(padding=(0, 2))
        for step, state in states.items():
            table.add_row(f"[bold]{step}[/]", state)
        return table

    # The table starts with the first step: a run refused before any step (server unreachable,
    # state folder not writable, no data) prints its error alone, not under six "waiting" lines.
    # Its console holds today's stdout: by the first step, sys.stdout is the run log's tee, and
    # a console looking it up then would see no terminal and draw into the log.
    screen = Console(file=sys.stdout)
    live: Live | None = None

    # A fan-out step (tune) starts once per candidate: the line counts its tasks and times the
    # step from its first start to its last end.
    started: dict[str, int] = {}
    ended: dict[str, int] = {}
    first: dict[str, float] = {}

    def on_event(event: StepEvent) -> None:
        nonlocal live
        now = time.monotonic()
        if event.status == "running":
            started[event.step] = started.get(event.step, 0) + 1
            first.setdefault(event.step, now - event.seconds)
        else:
            ended[event.step] = ended.get(event.step, 0) + 1
        n, done = started.get(event.step, 0), ended.get(event.step, 0)
        tasks = f" ({done} of {n} tasks)" if n > 1 else ""
        seconds = now - first.get(event.step, now - event.seconds)
        if event.status not in ("running", "SUCCESS"):
            states[event.step] = f"[red]{event.status.lower()}[/] after {seconds:.1f} s{tasks}"
        elif states.get(event.step, "").startswith("[red]"):
            pass  # a failed task's line stays, whatever its siblings do
        elif done < n:
            states[event.step] = f"[cyan]running[/]{tasks}"
        else:
            tasks = f" ({n} tasks)" if n > 1 else ""
            states[event.step] = f"[green]done[/] in {seconds:.1f} s{tasks}"
        if live is None:
            # Not redirect_stdout: kfp's output must keep going to the tee (the log and the
            # step events), not be printed above the table.
            live = Live(
                render(),
                console=screen,
                refresh_per_second=8,
                transient=False,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            live.start()
        else:
            live.update(render())

    try:
        return run_training(
            settings,
            data=data,
            config_text=config_text,
            model_name=model_name,
            min_improvement=min_improvement,
            runner=runner,
            on_event=on_event,
        )
    finally:
        if live is not None:
            live.stop()
            # The live table leaves the cursor at the end of its last line; what follows
            # (the outcome, or an error) starts on a fresh one.
            screen.print()


def _print_outcome(result: Any) -> None:
    """The registered model, its alias, the headline metrics, and where to look next."""
    from kubeline.evaluate.verdict import Verdict

    settings = _settings()
    out = result.outputs
    if "model_names" in out:
        _print_per_ticker_outcome(result)
        return
    alias = out.get("alias", "")
    colour = "green" if alias == "champion" else "yellow"
    status = f"as [bold {colour}]{alias}[/]" if alias else "[bold red]rejected[/] (no alias)"
    console.print(
        f"registered [bold]{out.get('model_name')}[/] version [bold]{out.get('model_version')}"
        f"[/] {status} ({result.seconds:.1f} s)",
        highlight=False,
    )
    console.print(f"  {escape(str(out.get('reason', '')))}", highlight=False)
    evaluation = result.artifact("evaluate", "evaluation")
    if evaluation is not None:
        console.print(f"  {escape(Verdict.read(evaluation).headline())}", highlight=False)
    # Paths and the command stay whole lines (soft_wrap): in a non-terminal rich would break them
    # at 80 columns, and a command cut in two cannot be pasted.
    if result.report_path is not None:
        console.print(f"  report: {escape(str(result.report_path))}", soft_wrap=True)
    console.print(f"  run log: {escape(str(result.log_path))}", soft_wrap=True)
    console.print(f"  MLflow run: {out.get('mlflow_run_id', '')}", highlight=False)
    if settings.tracking_uri.startswith("sqlite:"):
        command = f"{Path(sys.executable).parent / 'mlflow'} ui --backend-store-uri"
        console.print(
            f"  MLflow UI: {command} {settings.tracking_uri}{_needs_the_ui_extra()}",
            highlight=False,
            soft_wrap=True,
        )
    else:
        console.print(f"  MLflow: {settings.shown_tracking_uri}", highlight=False, soft_wrap=True)


def _print_per_ticker_outcome(result: Any) -> None:
    """One line per ticker's model (the per-ticker pipeline's collected outputs), then the log."""
    out = result.outputs
    rows = zip(
        out["model_names"], out["model_versions"], out["aliases"], out["reasons"], strict=True
    )
    console.print(
        f"registered {len(out['model_names'])} models, one per ticker ({result.seconds:.1f} s)",
        highlight=False,
    )
    for name, version, alias, reason in rows:
        status = "[bold green]champion[/]" if alias == "champion" else "[bold red]no alias[/]"
        console.print(f"  [bold]{name}[/] version [bold]{version}[/] {status}", highlight=False)
        console.print(f"    {escape(str(reason))}", highlight=False)
    for report in result.reports:
        console.print(f"  report: {escape(str(report))}", soft_wrap=True)
    console.print(f"  run log: {escape(str(result.log_path))}", soft_wrap=True)


def _needs_the_ui_extra() -> str:
    """The core has only the MLflow client; `mlflow ui` comes with the full mlflow."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        version("mlflow")
    except PackageNotFoundError:
        return " (install it first: pip install 'kubeline[ui]')"
    return ""


@app.command()
def run(
    data: Annotated[
        str | None,
        typer.Option(
            "--data",
            help="Local path or s3://bucket/prefix of the raw OHLCV files (required; "
            "`kubeline demo` runs on generated data).",
        ),
    ] = None,
    config: ConfigOption = None,
    model: ModelOption = None,
    min_improvement: Annotated[
        float | None,
        typer.Option(
            min=0.0, help="Margin over the baseline and champion (default: the config's)."
        ),
    ] = None,
    runner: Annotated[
        Literal["subprocess", "docker"] | None,
        typer.Option(help="subprocess, or docker: each step in the KUBELINE_IMAGE container."),
    ] = None,
) -> None:
    """Run the compiled training pipeline on this machine with kfp.local."""
    from kubeline.errors import ConfigError

    if data is None:
        # Training on made-up data and registering the result could put a synthetic model
        # over a real champion: only `kubeline demo` does that, and says so.
        raise ConfigError(
            "kubeline run needs --data: the raw files to train on (a folder, a file or an "
            "s3:// prefix); nothing was run",
            hint="to try kubeline on generated data, run `kubeline demo`",
        )
    config_text = _config_text(config)
    result = _run_pipeline(data, config_text, model or "", min_improvement, runner)
    _print_outcome(result)


@app.command()
def demo(
    serve: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Serve the champion after training.")
    ] = True,
) -> None:
    """Generate the demo data (20 tickers x 5 years), run the pipeline, serve the champion."""
    import importlib.util

    from kubeline.data.demo import demo_data

    folder, made = demo_data(_settings().state_path)
    console.print(f"{'generated' if made else 'using'} demo data in {escape(str(folder))}")
    result = _run_pipeline(str(folder), "", "", None)
    _print_outcome(result)
    if not serve:
        return
    # A plain install (and the pipeline image) has no BentoML: training is the whole demo there.
    if importlib.util.find_spec("bentoml") is None:
        console.print("not serving: BentoML is not installed (pip install 'kubeline[serving]')")
        return
    _demo_serving(folder)


def _demo_serving(folder: Path) -> None:
    """Serve the champion, make the first calls a user makes, show what /metrics counted; then
    send a clean and a shifted batch and run the monitor on each."""
    import importlib.util

    from kubeline.errors import ModelNotFoundError
    from kubeline.serving import demo, launch

    settings = _settings()
    try:
        name, version = launch.preflight(settings)
    except ModelNotFoundError:
        console.print("no champion yet, so nothing to serve", highlight=False)
        return
    log = settings.state_path / "logs" / "demo-serve.log"
    monitoring = importlib.util.find_spec("evidently") is not None
    batches = None
    if monitoring:
        from kubeline.monitor.demo import batches as monitor_batches
        from kubeline.serving.loaded import load_served

        card = load_served(settings).card
        batches = monitor_batches(card.feature_names, card.holdout_start)
    console.print(f"serving {name} version {version} (kubeline serve) ...", highlight=False)
    served = demo.serve_and_call(folder, log, batches)
    for call in served.calls:
        console.print(f"  {call.method} {served.url}{call.path} -> {call.status}", highlight=False)
        console.print(f"    {escape(json.dumps(call.answer))}", highlight=False, soft_wrap=True)
    console.print("  /metrics lines that counted them:", highlight=False)
    for line in served.metrics:
        console.print(f"    {escape(line)}", highlight=False, soft_wrap=True)
    console.print(f"  stopped the service (PID {served.pid}); its log: {log}", soft_wrap=True)
    if not monitoring:
        console.print(
            "not monitoring: Evidently is not installed (pip install 'kubeline[monitor]')"
        )
        return
    from kubeline.steps.monitor import check

    for batch, since, until in served.windows:
        rows = len((batches or {}).get(batch, []))
        console.print(
            f"monitoring the {batch} batch ({rows:,} requests' rows) ...", highlight=False
        )
        summary = check(since=since, until=until, settings=settings)
        top = ", ".join(summary.drifted_features[:5]) or "none"
        moved = summary.prediction_drift
        console.print(
            f"  {summary.decision}: {summary.drifted_share:.0%} of the features drifted "
            f"(top: {escape(top)}); prediction drift "
            + (f"{moved:.3f}" if moved is not None else "not compared"),
            highlight=False,
        )
        console.print(f"  report: {escape(str(summary.report))}", soft_wrap=True, highlight=False)


@app.command()
def promote(
    version: Annotated[str, typer.Option("--version", help="Model version to make champion.")],
    model: ModelOption = None,
    reason: Annotated[str, typer.Option(help="Why, for the history.")] = "promoted by hand",
) -> None:
    """Move the champion alias to a version by hand (the history keeps the previous one)."""
    from kubeline import registry

    settings = _settings()
    name = model or settings.model_name
    registry.promote(registry.connect(settings, create=False), name, version, reason)
    console.print(f"{name} version {version} is now [bold green]champion[/]")


@app.command()
def rollback(model: ModelOption = None) -> None:
    """Return the champion alias to the previous champion."""
    from kubeline import registry

    settings = _settings()
    name = model or settings.model_name
    current, previous = registry.rollback(registry.connect(settings, create=False), name)
    console.print(f"{name}: champion moved back from version {current} to version {previous}")


@app.command()
def models(
    model: ModelOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List a registered model's versions: aliases, gate state, scores against naive forecasts."""
    from rich import box
    from rich.table import Table

    from kubeline import registry
    from kubeline.lineage import DATA_HASH, tag

    settings = _settings()
    name = model or settings.model_name
    found = registry.versions(registry.connect(settings, create=False), name)
    if as_json:
        print(json.dumps([v.as_dict() for v in found], indent=2))
        return
    # No vertical rules: at 80 columns every character goes to the values.
    table = Table(title=f"{name}", box=box.SIMPLE_HEAD, collapse_padding=True, pad_edge=False)
    for column in ("version", "aliases", "created", "gate", "scores", "run", "sha256"):
        # A score line stays whole ("persiste…" tells nothing); the rest fold, never cut.
        table.add_column(
            column,
            overflow="fold",
            no_wrap=column in ("version", "aliases", "gate", "scores", "sha256"),
            min_width=10 if column == "created" else None,
        )
    for v in found:
        table.add_row(
            v.version,
            ", ".join(v.aliases),
            v.created.replace(" ", "\n", 1),
            v.gate,
            _scores(v.scores),
            v.tags.get(tag("pipeline_run_id"), "")[:12],
            v.tags.get(tag(DATA_HASH), "").removeprefix("sha256:")[
                :7
            ],  # a short hash, as git shows one
        )
    console.print(table)


def _scores(scores: dict[str, Any]) -> str:
    """``rmse:`` then ``model 0.0121``, ``constant 0.0120``, ...: one line per forecast."""
    if not scores:
        return ""
    metric = scores.get("metric", "")
    values = [
        f"{k.replace('_', ' ')} {v:.4g}"
        for k, v in scores.items()
        if k != "metric" and isinstance(v, int | float)
    ]
    return "\n".join([f"{metric}:", *values])


PipelineOption = Annotated[
    str, typer.Option("--pipeline", help="The pipeline to run on KFP (see `kubeline compile`).")
]
DataOption = Annotated[
    str | None,
    typer.Option("--data", help="The pipeline's `data` input: s3:// prefix of the raw files."),
]
ParamOption = Annotated[
    list[str] | None,
    typer.Option(
        "--param",
        metavar="KEY=VALUE",
        help="Another pipeline input (repeatable), e.g. model_name=returns.",
    ),
]


def _run_inputs(data: str | None, config: Path | None, params: list[str] | None) -> dict[str, Any]:
    """The pipeline inputs the options name; the spec checks them (kubeline.runner.remote)."""
    from kubeline.errors import ConfigError

    given: dict[str, Any] = {}
    for item in params or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(
                f"--param {item!r} is not KEY=VALUE", hint="e.g. --param model_name=m"
            )
        given[key.strip()] = value
    named: dict[str, str | None] = {
        "data": data,
        "config": _config_text(config) if config is not None else None,
    }
    for option, text in named.items():
        if text is None:
            continue
        if option in given:
            raise ConfigError(f"--{option} and --param {option}=... both set the input {option!r}")
        given[option] = text
    return given


def _training_for(pipeline: str, inputs: dict[str, Any]) -> str:
    """``training`` given a per-ticker run config means the per-ticker pipeline; said so."""
    from kubeline.runner.local import training_pipeline_for

    if pipeline != "training" or not isinstance(inputs.get("config"), str):
        return pipeline
    chosen = training_pipeline_for(inputs["config"])
    if chosen != pipeline:
        console.print(
            f"the run config asks for one model per ticker (data.per_ticker): running the "
            f"{chosen} pipeline",
            highlight=False,
        )
    return chosen


@app.command()
def submit(
    pipeline: PipelineOption = "training",
    data: DataOption = None,
    config: ConfigOption = None,
    param: ParamOption = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait for the run; exit non-zero if it fails.")
    ] = False,
    timeout: Annotated[
        float, typer.Option(min=1, help="With --wait: seconds to wait before giving up.")
    ] = 6 * 3600,
) -> None:
    """Compile a pipeline and run it on KFP (KUBELINE_KFP_HOST); print the run's link."""
    from kubeline.runner.remote import submit as submit_run
    from kubeline.runner.remote import wait as wait_for

    settings = _settings()
    inputs = _run_inputs(data, config, param)
    pipeline = _training_for(pipeline, inputs)
    with console.status("compiling and submitting"):
        done = submit_run(settings, pipeline, inputs)
    version, run = done.version, done.run
    if version.uploaded:
        console.print(f"uploaded pipeline version [bold]{version.name}[/] (a new spec)")
    else:
        console.print(
            f"reusing pipeline version [bold]{version.name}[/] (this spec, uploaded before)"
        )
    console.print(
        f"started run [bold]{escape(run.name)}[/] in experiment {escape(done.experiment)}",
        highlight=False,
    )
    console.print(f"  run: {run.url}", soft_wrap=True, highlight=False)
    if not wait:
        return
    with console.status("waiting for the run"):
        finished = wait_for(done.kfp, run.run_id, timeout, settings.kfp_poll_seconds, version.name)
    took = f" in {_duration(finished.seconds)}" if finished.seconds is not None else ""
    console.print(f"[green]succeeded[/]{took}", highlight=False)


@app.command()
def upload(
    pipeline: Annotated[
        list[str] | None,
        typer.Option(
            "--pipeline",
            metavar="NAME",
            help="A committed pipeline to upload (repeatable); all of pipelines/compiled/ if none.",
        ),
    ] = None,
    schedule_name: Annotated[
        str | None,
        typer.Option(
            "--schedule",
            metavar="NAME",
            help="Then create or update the training's recurring run of that name, as "
            "`kubeline schedule` does (needs --cron); the same again changes nothing.",
        ),
    ] = None,
    cron: Annotated[
        str | None,
        typer.Option("--cron", help="With --schedule: the five cron fields users write."),
    ] = None,
    param: ParamOption = None,
) -> None:
    """Upload the committed compiled pipelines to KFP as versions named by the spec's hash."""
    from kubeline.errors import ConfigError
    from kubeline.runner.remote import upload as upload_specs

    if (schedule_name is None) != (cron is None) or (param and schedule_name is None):
        raise ConfigError(
            "kubeline upload --schedule and --cron go together, and --param needs them",
            hint="e.g. --schedule nightly --cron '0 2 * * *' --param data=s3://bucket/market",
        )
    with console.status("uploading"):
        done = upload_specs(_settings(), pipeline)
    for spec, version in done:
        said = "created" if version.uploaded else "already there, nothing sent"
        console.print(
            f"{spec.pipeline} ({escape(spec.display_name)}): version [bold]{version.name}[/] "
            f"{said}",
            highlight=False,
            soft_wrap=True,  # one line per pipeline, also in a Job's log
        )
    if schedule_name is not None and cron is not None:
        # The Helm hook's recurring run from values: the very path `kubeline schedule` takes.
        schedule(name=schedule_name, cron=cron, param=param)


@app.command()
def schedule(
    name: Annotated[str, typer.Option("--name", help="The recurring run's name (its identity).")],
    cron: Annotated[
        str | None,
        typer.Option(
            "--cron",
            help="When, as the five cron fields users write ('0 6 * * 1-5': 06:00 on weekdays); "
            "sent to KFP with a seconds field in front.",
        ),
    ] = None,
    delete: Annotated[
        bool, typer.Option("--delete", help="Delete the recurring run of that name.")
    ] = False,
    pipeline: PipelineOption = "training",
    data: DataOption = None,
    config: ConfigOption = None,
    param: ParamOption = None,
) -> None:
    """Create or update a recurring run on KFP by name; the same again changes nothing."""
    from kubeline.errors import ConfigError
    from kubeline.runner import remote
    from kubeline.runner.cron import to_kfp_cron

    settings = _settings()
    if delete:
        gone = remote.unschedule(settings, name)
        if gone.action == "absent":
            console.print(f"no recurring run named {escape(name)}: nothing to delete")
        else:
            console.print(f"deleted recurring run {escape(name)} ({gone.recurring_run_id})")
        return
    if cron is None:
        raise ConfigError(
            "kubeline schedule needs --cron (or --delete)", hint="e.g. --cron '0 6 * * *'"
        )
    kfp_cron = to_kfp_cron(cron)
    console.print(escape(kfp_cron.note()), highlight=False)
    inputs = _run_inputs(data, config, param)
    pipeline = _training_for(pipeline, inputs)
    with console.status("compiling and scheduling"):
        done = remote.schedule(settings, pipeline, name, kfp_cron, inputs)
    said = {
        "created": "created",
        "replaced": "replaced (KFP cannot update a recurring run: the old one was deleted)",
        "unchanged": "unchanged (same version, cron and inputs): nothing was sent",
    }[done.action]
    console.print(f"recurring run [bold]{escape(name)}[/] {said}", highlight=False)
    console.print(
        f"  pipeline version {done.version}, recurring run id {done.recurring_run_id}",
        highlight=False,
        soft_wrap=True,
    )


@app.command()
def runs(
    limit: Annotated[int, typer.Option(min=1, max=200, help="How many of the newest runs.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the newest runs on KFP in the settings' experiment: state, times, pipeline version."""
    from rich import box
    from rich.table import Table

    from kubeline.runner.remote import recent_runs

    experiment, found = recent_runs(_settings(), limit)
    if as_json:
        print(json.dumps([r.as_dict() for r in found], indent=2))
        return
    if not found:
        console.print(f"no runs in the KFP experiment {escape(experiment)} yet")
        return
    colours = {"SUCCEEDED": "green", "FAILED": "red", "RUNNING": "cyan", "PENDING": "cyan"}
    table = Table(
        title=f"KFP experiment {escape(experiment)}",
        box=box.SIMPLE_HEAD,
        collapse_padding=True,
        pad_edge=False,
    )
    table.add_column("run", overflow="fold")
    for column in ("state", "created (UTC)", "took", "version"):
        table.add_column(column, no_wrap=True)
    for r in found:
        colour = colours.get(r.state, "yellow")
        table.add_row(
            escape(r.name),
            f"[{colour}]{r.state.lower()}[/]",
            r.created[:16].replace("T", " "),
            _duration(r.seconds),
            escape(r.pipeline_version),
        )
    console.print(table)


def _duration(seconds: float | None) -> str:
    """``45s``, ``3m12s``, ``2h05m``; ``-`` for a run still going."""
    if seconds is None:
        return "-"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


@app.command()
def serve(
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="Port (default: KUBELINE_SERVE_PORT).")
    ] = None,
    host: Annotated[
        str | None, typer.Option(help="Address (default: KUBELINE_SERVE_HOST).")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="Worker processes (default: the container's CPU limit)."),
    ] = None,
    version: Annotated[
        str | None, typer.Option("--version", help="Serve this version, not the champion.")
    ] = None,
    model: ModelOption = None,
) -> None:
    """Serve the registry's champion (or --version) over HTTP with BentoML, until stopped."""
    from kubeline.serving import launch
    from kubeline.settings import Settings

    given = {"serve_port": port, "serve_host": host, "serve_workers": workers}
    given |= {"serve_version": version, "model_name": model}
    settings = Settings(**{**_settings().model_dump(), **{k: v for k, v in given.items() if v}})
    name, number = launch.preflight(settings)
    url = f"http://{settings.serve_host}:{settings.serve_port}"
    console.print(f"serving {name} version {number} at {url} (OpenAPI at {url}/docs)")
    sys.stdout.flush()
    launch.exec_serve(settings)


@app.command("config")
def show_config() -> None:
    """Print the effective settings as JSON (secrets masked)."""
    print(json.dumps(_settings().masked(), indent=2))


@images_app.command("build")
def images_build(
    engine: Annotated[
        Literal["docker", "podman"] | None,
        typer.Option(help="Container engine (default: whichever is reachable)."),
    ] = None,
    base: Annotated[
        str | None,
        typer.Option(
            help="Base image (default: the official slim Python image, pulled from Docker Hub; "
            "with no registry, a local one: see README, 'Images')."
        ),
    ] = None,
    tag: Annotated[
        str | None,
        typer.Option(
            help="Image tag for each role built (default: its setting's, e.g. KUBELINE_IMAGE's)."
        ),
    ] = None,
    wheelhouse: Annotated[
        Path | None,
        typer.Option(help="Folder of wheels to install from (default: filled from the index)."),
    ] = None,
    role: Annotated[
        list[str] | None,
        typer.Option(
            help="Build only this role's image: pipeline, serving or monitor (repeatable; "
            "default: all three). The serving image is tagged KUBELINE_SERVING_IMAGE's "
            "(kubeline-serving:<version>), the monitor's KUBELINE_MONITOR_IMAGE's."
        ),
    ] = None,
) -> None:
    """Build the images from images/ with the same lock as the venv."""
    from kubeline.images import ROLES, build_images

    roles = tuple(dict.fromkeys(role)) if role else ROLES
    with console.status("building images"):
        built = build_images(engine=engine, base=base, tag=tag, wheelhouse=wheelhouse, roles=roles)
    for image in built:
        console.print(
            f"built [bold]{image.name}:{image.tag}[/] ({image.size_bytes / 2**20:,.0f} MiB) "
            f"in {image.build_seconds:.0f} s",
            highlight=False,
        )
    pipeline = [image for image in built if image.role == "pipeline"]
    if pipeline:
        reference = f"{pipeline[0].name}:{pipeline[0].tag}"
        setting = "" if reference == _settings().image else f"KUBELINE_IMAGE={reference} "
        console.print(
            f"run the pipeline in it: {setting}kubeline run --runner docker --data DIR",
            highlight=False,
            soft_wrap=True,
        )


@chart_app.command("render")
def chart_render(
    out: Annotated[
        Path, typer.Option("--out", help="Folder for the manifests (replaced whole).")
    ] = Path("manifests"),
    chart: Annotated[
        Path | None, typer.Option("--chart", help="The chart (default: this checkout's).")
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Fail if the manifests differ from the chart's.")
    ] = False,
) -> None:
    """Render the chart into plain manifests for `kubectl apply -k` (a base and a kind overlay)."""
    from kubeline.chart import stale_manifests, write_manifests
    from kubeline.errors import ConfigError

    if check:
        stale = stale_manifests(out, chart)
        if stale:
            raise ConfigError(
                f"manifests in {out} are stale: {', '.join(stale)}",
                hint="run `kubeline chart render` and commit manifests/",
            )
        console.print("manifests are up to date")
        return
    files = write_manifests(out, chart)
    console.print(f"wrote {len(files)} files to [bold]{escape(str(out))}[/]", highlight=False)
