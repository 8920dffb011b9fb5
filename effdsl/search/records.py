"""The search folder: ``trials.jsonl`` (one line per finished trial) and ``search.json``.

A trial's line is written in one ``write`` and flushed to disk before the next trial is
recorded, so a search killed at any moment (SIGINT, SIGKILL) leaves every finished trial
intact and at most one partial last line, which :func:`read_trials` drops. ``search.json``
holds the options that decide which trials a search makes (the space, the seed, the
strategy, the proxy ...); ``--resume`` continues a search only with the same ones.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from effdsl.diagnostics import Diagnostic, EffdslError

TRIALS = "trials.jsonl"
SETTINGS = "search.json"
BEST = "best.eff"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"

# The fields every trial line has (docs/search.md lists them).
FIELDS = ("trial", "status", "params", "macs", "latency_ms", "accuracy", "score", "reward", "seconds", "retries",
          "seed", "key", "choices", "spec", "error")
# Written in search.json by earlier versions, and no longer deciding the trials: ignored by --resume.
NOT_DECIDING = ("executor",)


def read_trials(folder: Path, name: str = TRIALS, index: str = "trial") -> list[dict[str, Any]]:
    """The complete lines of ``trials.jsonl`` (a partial last line, from a kill, is cut off).

    ``name`` and ``index``: another file of numbered lines (``grid.jsonl``, numbered by
    ``candidate``)."""
    path = folder / name
    if not path.exists():
        return []
    data = path.read_bytes()
    records: list[dict[str, Any]] = []
    good = 0
    for line in data.split(b"\n")[:-1] if data.endswith(b"\n") else data.split(b"\n"):
        try:
            record = json.loads(line)
        except ValueError:
            break
        if not isinstance(record, dict) or record.get(index) != len(records):
            break
        records.append(record)
        good += len(line) + 1
    if good < len(data):  # a line cut by a kill: drop it so that the next one starts clean
        with path.open("r+b") as handle:
            handle.truncate(good)
    return records


def append_trial(folder: Path, record: dict[str, Any], name: str = TRIALS) -> None:
    """Add one line and make it durable before going on."""
    line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
    with (folder / name).open("ab") as handle:
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())


def prepare(folder: Path, identity: dict[str, Any], resume: bool) -> list[dict[str, Any]]:
    """Create or reopen the search folder; the trials already finished (E609)."""
    settings = folder / SETTINGS
    if folder.exists() and not folder.is_dir():
        raise EffdslError(Diagnostic("E609", f"--out '{folder}' is a file, not a folder"))
    done = read_trials(folder) if folder.exists() else []
    if not resume:
        if done or settings.exists():
            raise EffdslError(Diagnostic(
                "E609", f"'{folder}' already holds a search ({len(done)} trial{'s' if len(done) != 1 else ''})", None,
                "continue it with --resume, or choose another --out folder"))
        folder.mkdir(parents=True, exist_ok=True)
        write_json(settings, identity)
        return []
    if not settings.exists():
        if done:
            raise EffdslError(Diagnostic("E609", f"'{folder}' has trials but no {SETTINGS}; it cannot be resumed"))
        folder.mkdir(parents=True, exist_ok=True)
        write_json(settings, identity)
        return []
    try:
        before = json.loads(settings.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise EffdslError(Diagnostic("E609", f"cannot read '{settings}': {exc}")) from None
    if not isinstance(before, dict):
        raise EffdslError(Diagnostic("E609", f"cannot read '{settings}': not a JSON object"))
    for key in NOT_DECIDING:
        before.pop(key, None)
    changed = [k for k in sorted(set(before) | set(identity)) if before.get(k) != identity.get(k)]
    if changed:
        shown = "; ".join(f"{k}: {_short(before.get(k))} then, {_short(identity.get(k))} now" for k in changed[:4])
        raise EffdslError(Diagnostic(
            "E609", f"--resume needs the options of the search in '{folder}': {shown}", None,
            "only --trials, --executor and --address (and --out, --resume) may differ; start a new search "
            "in another folder"))
    return done


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")
