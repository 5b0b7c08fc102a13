"""Docstrings as the KFP UI shows them: each ``Args:``/``Returns:`` entry on one line."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])
_SECTIONS = ("Args:", "Returns:")


def one_line_entries(func: F) -> F:
    """Join the wrapped lines of each ``Args:``/``Returns:`` entry of ``func``'s docstring.

    KFP turns each entry into the description of that input or output, line breaks included,
    and the KFP UI would show them mid-sentence; the source keeps its 100-column lines.
    """
    doc = inspect.getdoc(func)
    if doc:
        func.__doc__ = join_entries(doc)
    return func


def returns_of(component: Any) -> Callable[[F], F]:
    """Give a pipeline the ``Returns:`` section of the component whose outputs it returns."""
    doc = inspect.getdoc(component.python_func) or ""
    if "Returns:" not in doc:
        raise ValueError(f"{component.name} documents no outputs (no Returns: section)")
    section = doc[doc.index("Returns:") :]

    def decorate(func: F) -> F:
        func.__doc__ = f"{inspect.getdoc(func) or ''}\n\n{section}"
        return func

    return decorate


def join_entries(doc: str) -> str:
    """``doc`` (dedented) with every entry's continuation lines joined to the entry's first."""
    out: list[str] = []
    in_section = False
    entry_indent: int | None = None
    for line in doc.splitlines():
        text = line.strip()
        indent = len(line) - len(line.lstrip())
        if text in _SECTIONS:
            in_section, entry_indent = True, None
        elif not text or indent == 0:
            in_section = False
        elif in_section:
            if entry_indent is None:
                entry_indent = indent
            elif indent > entry_indent:
                out[-1] = f"{out[-1]} {text}"
                continue
        out.append(line)
    return "\n".join(out)
