"""Human-readable outputs of a run: PNG charts and a self-contained HTML report."""
