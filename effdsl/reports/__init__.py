"""Family reports: phi sweeps (:mod:`~effdsl.reports.sweep`), diffs between members
(:mod:`~effdsl.reports.diff`) and the table of built-in models (:mod:`~effdsl.reports.models`).

Never imports torch. May import everything up to :mod:`effdsl.api`.
"""

from effdsl.reports.diff import (
    Choice,
    Diff,
    Side,
    StageDiff,
    Tensor,
    block_of,
    choices_in_order,
    diff,
    render_diff,
    tensors,
)
from effdsl.reports.sweep import (
    COLUMNS,
    CSV_FIELDS,
    MAX_ROWS,
    PLOT_SUFFIXES,
    PRESET_DEFINITION,
    RATIO_DEFINITION,
    REPORT_SUFFIXES,
    Sweep,
    SweepRow,
    check_outputs,
    parse_phi_range,
    plot_sweep,
    render_sweep,
    sweep,
    sweep_csv,
    sweep_files,
    sweep_html,
    sweep_json,
    sweep_markdown,
)

__all__ = [
    "COLUMNS", "CSV_FIELDS", "MAX_ROWS", "PLOT_SUFFIXES", "PRESET_DEFINITION", "RATIO_DEFINITION",
    "REPORT_SUFFIXES", "Choice", "Diff", "Side", "StageDiff", "Sweep", "SweepRow", "Tensor", "block_of",
    "check_outputs", "choices_in_order", "diff", "parse_phi_range", "plot_sweep", "render_diff", "render_sweep",
    "sweep", "sweep_csv", "sweep_files", "sweep_html", "sweep_json", "sweep_markdown", "tensors",
]
