"""The demo data set: generated data of a fixed size and seed, kept in the state folder."""

from __future__ import annotations

from pathlib import Path

DEMO_TICKERS, DEMO_YEARS, DEMO_SEED = 20, 5.0, 7


def demo_data(state: Path) -> tuple[Path, bool]:
    """The demo data set under ``state`` (20 tickers x 5 years), made on first use.

    Returns the folder and whether it was generated now.
    """
    from kubeline.data.generate import generate, write_dataset

    folder = state / "data" / f"demo-{DEMO_TICKERS}x{DEMO_YEARS:g}y-seed{DEMO_SEED}"
    if folder.exists() and any(folder.iterdir()):
        return folder, False
    frame = generate(tickers=DEMO_TICKERS, years=DEMO_YEARS, seed=DEMO_SEED)
    write_dataset(frame, folder, "yahoo")
    return folder, True
