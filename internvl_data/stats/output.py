"""Output of ``ivl-data stats``: rich tables, JSON, CSV, PNG histograms and one self-contained HTML report.

Every format is built from :class:`stats.StatsResult` (its DataFrames and tallies); nothing here computes
statistics. Files are written atomically.
"""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from internvl_data.fsio import write_atomic
from internvl_data.stats.compute import StatsResult

if TYPE_CHECKING:
    import pandas as pd

OVERVIEW = (
    "dataset",
    "repeat_time",
    "lines",
    "effective_records",
    "share",
    "text",
    "single",
    "multi",
    "video",
    "images_total",
    "tiles_total",
)
BUDGET = (
    "dataset",
    "tokens_total",
    "supervised_tokens_total",
    "over_length",
    "truncated_image",
    "zero_supervised",
    "official_mismatch",
    "video_cannot_fit",
    "steps_per_epoch",
)
LABELS = {
    "repeat_time": "repeat",
    "effective_records": "effective",
    "images_total": "images",
    "tiles_total": "tiles",
    "tokens_total": "tokens",
    "supervised_tokens_total": "supervised",
    "over_length": "over max_seq_length",
    "truncated_image": "image cut",
    "zero_supervised": "nothing trained",
    "official_mismatch": "official mismatch",
    "video_cannot_fit": "video cannot fit",
    "steps_per_epoch": "steps/epoch",
}
PLOT_METRICS = ("tiles_per_image", "tiles_per_record")
PLOT_METRICS_MODEL = ("total_tokens", "supervised_tokens")


def tables(result: StatsResult) -> list[tuple[str, pd.DataFrame]]:
    """The report's tables with display headers: mixture, token budget (with a model), distributions."""
    summary = result.summary()
    out = [("Mixture (effective records after repeat_time)", summary[list(OVERVIEW)])]
    if result.with_model:
        out.append((f"Token budget (max_seq_length {result.settings.max_seq_length:d})", summary[list(BUDGET)]))
    out.append(
        (
            "Distributions (per record; per image for image_* and tiles_per_image; per video for video_frames)",
            result.distributions(),
        )
    )
    return [(title, df.rename(columns=LABELS)) for title, df in out]


def to_json(result: StatsResult) -> bytes:
    """``{"meta", "settings", "summary": [...], "distributions": [...]}``; NaN becomes null."""
    doc = {
        "meta": result.meta,
        "settings": result.settings_dict(),
        "summary": [_clean(r) for r in result.rows()],
        "distributions": [_clean(r) for r in result.distributions().to_dict("records")],
    }
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n"


def to_csv(result: StatsResult) -> str:
    """The wide summary table: one row per dataset and the mixture; distribution columns ``<metric>_<stat>``."""
    return str(result.summary().to_csv(index=False, lineterminator="\n"))


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and math.isnan(v) else _py(v)) for k, v in row.items()}


def _py(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def fmt(v: Any) -> str:
    """Human formatting for tables: thousands separators, one decimal, '-' for missing."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
        return f"{int(v):,}"
    if isinstance(v, float):
        return f"{v:,.3f}" if abs(v) < 1 else f"{v:,.1f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def left_out(result: StatsResult) -> list[str]:
    """One line per dataset left out of every number: its annotation file vanished or became unreadable while
    stats read it (the command then exits 1)."""
    return [
        f"{path}: vanished or became unreadable while stats read it ({why}); dataset {name!r} is left out of every "
        "number"
        for name, path, why in result.unreadable
    ]


def not_counted(result: StatsResult) -> list[str]:
    """``path:line: why; not counted`` for the first lines of each dataset that stats could not count (not JSON,
    not a record, a record the sample builder refuses such as IVL407), and one line for the rest."""
    from internvl_data.stats.plan import repeat_factor

    out = []
    for d in result.datasets:
        total = (d.tally.counts.get("skipped_lines", 0) + d.tally.counts.get("build_errors", 0)) // repeat_factor(
            d.repeat_time
        )
        out += [f"{d.annotation}:{line}: {why}; not counted" for line, why in d.problems]
        if total > len(d.problems):
            out.append(
                f"{d.annotation}: {total - len(d.problems):,} more line(s) not counted; "
                f"`ivl-data validate {result.meta}` lists them all"
            )
    return out


def print_tables(result: StatsResult, file: Any = None, *, width: int | None = None) -> None:
    """Rich tables (colour on a terminal, plain text elsewhere). A table wider than the terminal (``width``: force
    one) is printed per dataset, one ``field value`` line each, instead of letting columns vanish or cutting names
    and numbers."""
    import sys

    from rich.console import Console
    from rich.table import Table

    wide = file is not None or not sys.stdout.isatty()  # files and pipes get whole tables
    console = Console(file=file, width=width or (240 if wide else None))
    for title, df in tables(result):
        if _table_width(df) > console.width:
            _print_vertical(console, title, df)
            continue
        table = Table(title=title, title_justify="left")
        for col in df.columns:
            table.add_column(
                str(col), justify="left" if col in ("dataset", "metric") else "right", min_width=min(len(str(col)), 12)
            )
        for row in df.itertuples(index=False):
            table.add_row(*(fmt(_py(v)) for v in row))
        console.print(table)


def _table_width(df: Any) -> int:
    """Characters a rich table of ``df`` needs without wrapping or cutting (borders and padding included)."""
    cols = [max([len(str(c))] + [len(fmt(_py(v))) for v in df[c]]) for c in df.columns]
    return sum(cols) + 3 * len(cols) + 1


def _print_vertical(console: Any, title: str, df: Any) -> None:
    """One block per row: the first column (dataset, or dataset and metric) as a heading, then ``field value``."""
    keys = [c for c in df.columns if c in ("dataset", "metric")] or [df.columns[0]]
    console.print(f"{title}", highlight=False)
    for row in df.to_dict("records"):
        console.print("  " + " / ".join(str(row[k]) for k in keys), highlight=False)
        fields = [c for c in df.columns if c not in keys]
        pad = max(len(str(c)) for c in fields) if fields else 0
        for c in fields:
            console.print(f"    {str(c):<{pad}}  {fmt(_py(row[c]))}", highlight=False, soft_wrap=True)


def plot_pngs(result: StatsResult) -> dict[str, bytes]:
    """PNG histograms (effective counts), one figure per metric with one panel per dataset that has values for it
    (a text-only dataset has no tile panel; a metric no dataset has is left out): no empty "no data" panels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = PLOT_METRICS + (PLOT_METRICS_MODEL if result.with_model else ())
    out: dict[str, bytes] = {}
    for metric in metrics:
        shown = [d for d in result.datasets if d.tally.hists.get(metric)]
        if not shown:
            continue
        n = len(shown)
        fig, axes = plt.subplots(n, 1, figsize=(7, 1.2 + 2.0 * n), squeeze=False)
        for ax, d in zip(axes[:, 0], shown):
            hist = d.tally.hists[metric]
            values = sorted(hist)
            bins = min(50, max(1, values[-1] - values[0] + 1))
            ax.hist(values, bins=bins, weights=[hist[v] for v in values], color="#4472c4")
            ax.set_title(f"{d.name}: {metric}", fontsize=9)
            ax.set_ylabel("records")
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=80)
        plt.close(fig)
        out[metric] = buf.getvalue()
    return out


def write_plots(result: StatsResult, folder: str | Path, pngs: dict[str, bytes] | None = None) -> list[Path]:
    """``<metric>.png`` files under ``folder`` (created)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for metric, data in (pngs if pngs is not None else plot_pngs(result)).items():
        path = folder / f"{metric}.png"
        write_atomic(path, data)
        paths.append(path)
    return paths


def _setting(v: Any) -> str:
    """A setting for people: yes/no for booleans, "-" for unset (never Python's True/None)."""
    if isinstance(v, bool):
        return "yes" if v else "no"
    return "-" if v is None else fmt(v) if isinstance(v, (int, float)) else str(v)


def to_html(result: StatsResult, pngs: dict[str, bytes] | None = None) -> str:
    """One self-contained page: settings, both tables, and the plots inlined as base64 PNGs."""
    pngs = pngs if pngs is not None else plot_pngs(result)
    settings = "".join(
        f"<li><code>{html.escape(k)}</code>: {html.escape(_setting(v))}</li>" for k, v in result.settings_dict().items()
    )
    images = "".join(
        f'<h3>{html.escape(m)}</h3><img alt="{html.escape(m)}" src="data:image/png;base64,'
        f'{base64.b64encode(data).decode()}">'
        for m, data in pngs.items()
    )
    body = "".join(
        f"<h2>{html.escape(title)}</h2>" + df.map(lambda v: fmt(_py(v))).to_html(index=False, escape=True)
        for title, df in tables(result)
    )
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>ivl-data stats</title><style>'
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:13px}"
        "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}</style></head><body>"
        f"<h1>ivl-data stats: {html.escape(result.meta)}</h1><ul>{settings}</ul>{body}"
        + (f"<h2>Histograms</h2>{images}" if images else "")
        + "</body></html>\n"
    )
