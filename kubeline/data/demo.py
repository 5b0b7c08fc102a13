"""The demo data set: generated data of a fixed size, seed and planted signal, in the state folder.

The signal is the generator's ``PLANTED_RETURN_AR`` (see ``kubeline.data.generate``): with it,
the default run config's model beats every naive forecast on this data with a Diebold-Mariano
p-value far below the gate's default 0.05, so `kubeline demo` ends with an honest champion.
"""

from __future__ import annotations

from pathlib import Path

DEMO_TICKERS, DEMO_YEARS, DEMO_SEED = 20, 5.0, 7


def demo_data(state: Path) -> tuple[Path, bool]:
    """The demo data set under ``state`` (20 tickers x 5 years), made on first use.

    Returns the folder and whether it was generated now. The folder is named for everything
    that shapes the data, the planted signal included, so data made by an earlier generator
    is not mistaken for today's.
    """
    from kubeline.data.generate import PLANTED_RETURN_AR, generate, write_dataset

    name = f"demo-{DEMO_TICKERS}x{DEMO_YEARS:g}y-seed{DEMO_SEED}-ar{PLANTED_RETURN_AR:g}"
    folder = state / "data" / name
    if folder.exists() and any(folder.iterdir()):
        return folder, False
    frame = generate(tickers=DEMO_TICKERS, years=DEMO_YEARS, seed=DEMO_SEED)
    write_dataset(frame, folder, "yahoo")
    return folder, True
