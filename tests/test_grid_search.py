"""effdsl grid: the candidates and their networks, deduplication, the records, resume,
the reports, --write, the usage errors, and the trained grid on digits (the issue's
command, marked slow).

The grids here scale ``tests/specs/tiny_digits.eff`` (32 pixels, 1 channel, 10 classes),
mostly with the zero-cost proxy, so that a grid of 21 candidates takes seconds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from pathlib import Path

import pytest
from typer.testing import CliRunner

import effdsl
from effdsl.cli import app
from effdsl.search import grid as gridmod
from effdsl.search import records

from conftest import ROOT

TINY = ROOT / "tests" / "specs" / "tiny_digits.eff"
ZERO_COST = ("--proxy", "zero-cost", "--step", "0.1", "--tolerance", "0.05", "--device", "cpu")


def _grid(out: Path, *args: str, spec: Path = TINY) -> object:
    return CliRunner().invoke(app, ["grid", str(spec), "--out", str(out), *args])


def _lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "grid.jsonl").read_text(encoding="utf-8").splitlines()]


def _without_times(lines: list[dict]) -> list[dict]:
    return [{k: v for k, v in line.items() if k != "seconds"} for line in lines]


def _exact(value: float) -> Fraction:
    return Fraction(str(value))


def _naive(target: Fraction, tolerance: Fraction, step: Fraction, top: Fraction) -> list[tuple[Fraction, ...]]:
    values = [1 + i * step for i in range(int((top - 1) / step) + 1)]
    return [(a, b, g) for a in values for b in values for g in values
            if abs(a * b * b * g * g - target) <= tolerance * target]


def _shape(spec: str, phi: float) -> tuple[object, ...]:
    """What the compiled member is: its rows' channels and repeats, and its resolution."""
    summary = effdsl.compile_spec(spec, phi=phi).summary
    return summary.resolution, tuple((r.name, r.in_ch, r.out_ch, r.repeats) for r in summary.rows)


@pytest.fixture(scope="module")
def zero_cost_grid(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, object]:
    folder = tmp_path_factory.mktemp("grid")
    out, new = folder / "g", folder / "new.eff"
    result = _grid(out, *ZERO_COST, "--write", str(new))
    return out, new, result


def test_every_candidate_satisfies_the_constraint_and_none_is_missed(zero_cost_grid) -> None:
    out, _, result = zero_cost_grid
    assert result.exit_code == 0, result.output
    lines = _lines(out)
    assert [line["candidate"] for line in lines] == list(range(len(lines)))
    found = [(_exact(t["alpha"]), _exact(t["beta"]), _exact(t["gamma"])) for t in lines]
    assert found == _naive(Fraction(2), Fraction(1, 20), Fraction(1, 10), Fraction(2))
    for t in lines:
        assert set(gridmod.FIELDS) <= set(t)
        a, b, g = _exact(t["alpha"]), _exact(t["beta"]), _exact(t["gamma"])
        assert min(a, b, g) >= 1 and abs(a * b * b * g * g - 2) <= Fraction(1, 10)
        assert t["product"] == pytest.approx(float(a * b * b * g * g))
        assert t["status"] == "ok" and t["accuracy"] is None and t["score"] is not None


def test_each_candidate_is_the_spec_scaled_by_its_own_rules(zero_cost_grid) -> None:
    out, _, _ = zero_cost_grid
    for t in _lines(out):
        # the resolution: the spec's rule (half up, multiple 1) on 32 x gamma^1, done here with decimals
        assert t["resolution"] == int((Decimal(32) * Decimal(str(t["gamma"]))).quantize(0, ROUND_HALF_UP))
        compiled = effdsl.compile_spec(t["spec"], phi=1)
        assert (compiled.summary.params, compiled.summary.macs) == (t["params"], t["macs"])
        net = effdsl.parse_spec(t["spec"])
        assert (net.scaling.alpha, net.scaling.beta, net.scaling.gamma) == (t["alpha"], t["beta"], t["gamma"])
        assert (net.in_ch, net.classes) == (1, 10)  # digits


def test_candidates_that_round_to_one_network_are_evaluated_once(zero_cost_grid) -> None:
    out, _, result = zero_cost_grid
    lines = _lines(out)
    shapes = [_shape(t["spec"], 1) for t in lines]
    first: dict[tuple[object, ...], int] = {}
    for t, shape in zip(lines, shapes, strict=True):
        original = first.setdefault(shape, t["candidate"])
        if original == t["candidate"]:
            assert t["same_as"] is None and t["seconds"] > 0
        else:
            assert t["same_as"] == original and t["seconds"] == 0
            assert t["score"] == lines[original]["score"] and t["status"] == lines[original]["status"]
    assert 0 < len(first) < len(lines)  # this grid has both kinds
    assert f"{len(first)} distinct networks, {len(lines) - len(first)} candidates round to" in result.stderr


def test_the_reports_rank_and_map_the_candidates(zero_cost_grid) -> None:
    out, _, result = zero_cost_grid
    lines = _lines(out)
    best = max(lines, key=lambda t: (t["score"], -t["macs"], -t["candidate"]))
    report = (out / "report.md").read_text(encoding="utf-8")
    assert f"best: candidate {best['candidate']}," in report and f"best: candidate {best['candidate']}," in \
        result.stderr
    table = [row for row in report.splitlines() if row.startswith("| ") and not row.startswith("| rank")]
    assert len(table) == min(20, len(lines))
    assert table[0].split(" | ")[1] == str(best["candidate"])
    page = (out / "report.html").read_text(encoding="utf-8")
    svg = (out / "heatmap.svg").read_text(encoding="utf-8")
    assert svg in page and page.count('<g class="cell"') == len({(t["beta"], t["gamma"]) for t in lines})
    best_cell = page.split(f'data-candidate="{best["candidate"]}"')[1].split("</g>")[0]
    assert 'stroke="#d62728"' in best_cell and page.count('stroke="#d62728"') == 1
    assert "<script" not in page and "http" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_write_carries_the_best_coefficients_and_nothing_else(zero_cost_grid) -> None:
    out, new, result = zero_cost_grid
    best = max(_lines(out), key=lambda t: (t["score"], -t["macs"], -t["candidate"]))
    before, after = TINY.read_text(encoding="utf-8").splitlines(), new.read_text(encoding="utf-8").splitlines()
    changed = [(x, y) for x, y in zip(before, after, strict=True) if x != y]
    assert len(before) == len(after) and len(changed) == 1  # comments and layout kept
    old_line, new_line = changed[0]
    assert old_line.split("#")[1] == new_line.split("#")[1]  # the line's comment too
    net = effdsl.parse_spec(new)
    assert (net.scaling.alpha, net.scaling.beta, net.scaling.gamma) == (best["alpha"], best["beta"], best["gamma"])
    macs = [effdsl.compile_spec(new, phi=phi).summary.macs for phi in (0, 1, 2)]
    assert macs[0] < macs[1] < macs[2]  # it scales
    assert effdsl.compile_spec(new, phi=1).summary.macs == best["macs"]  # the grid's own classes and channels
    assert f"wrote {new}" in result.stderr


def test_resume_reuses_the_recorded_candidates(zero_cost_grid, tmp_path: Path) -> None:
    whole, _, _ = zero_cost_grid
    out = tmp_path / "resumed"
    out.mkdir()
    (out / "grid.json").write_text((whole / "grid.json").read_text(encoding="utf-8"), encoding="utf-8")
    kept = b"".join((whole / "grid.jsonl").read_bytes().splitlines(keepends=True)[:5])
    (out / "grid.jsonl").write_bytes(kept + b'{"candidate": 5, "alph')  # as a kill leaves it
    result = _grid(out, *ZERO_COST, "--resume", "--workers", "2")  # where trials run may change
    assert result.exit_code == 0, result.output
    assert (out / "grid.jsonl").read_bytes().startswith(kept)
    # the rest is rerun with one thread a worker instead of two: the scores agree to rounding
    assert [{**t, "score": pytest.approx(t["score"], rel=1e-6)} for t in _without_times(_lines(out))] == \
        _without_times(_lines(whole))
    assert _lines(out)[:5] == _lines(whole)[:5]  # taken as recorded, not rerun
    done = (out / "grid.jsonl").read_bytes()
    (out / "report.md").unlink()
    again = _grid(out, *ZERO_COST, "--resume")  # all recorded: nothing runs, the reports are rewritten
    assert again.exit_code == 0 and (out / "grid.jsonl").read_bytes() == done and (out / "report.md").exists()


def test_resume_refuses_other_options(zero_cost_grid) -> None:
    out, _, _ = zero_cost_grid
    before = (out / "grid.jsonl").read_bytes()
    other = _grid(out, "--proxy", "zero-cost", "--step", "0.05", "--tolerance", "0.05", "--resume")
    assert other.exit_code == 2 and "error[E609]" in other.stderr
    assert "step: \"0.1\" then, \"0.05\" now" in other.stderr and "only --workers" in other.stderr
    fresh = _grid(out, *ZERO_COST)
    assert fresh.exit_code == 2 and "already holds a grid (21 candidates recorded)" in fresh.stderr
    assert "--resume" in fresh.stderr
    assert (out / "grid.jsonl").read_bytes() == before


@pytest.mark.parametrize(("args", "code", "message"), [
    (("--phi", "0"), "E607", "--phi must be greater than 0 and at most 4, got 0"),
    (("--target", "1"), "E607", "--target must be greater than 1"),
    (("--tolerance", "-0.1"), "E607", "--tolerance must be at least 0 and below 1, got -0.1"),
    (("--max", "1"), "E607", "--max must be greater than 1, got 1"),
    (("--epochs", "0"), "E607", "--epochs must be at least 1, got 0"),
    (("--workers", "0"), "E607", "--workers must be at least 1, got 0"),
    (("--target", "nan"), "E607", "--target must be a finite number"),
    (("--executor", "ray", "--address", "ray://head:10001"), "E620", "is a Ray Client address"),
    (("--address", "10.0.0.1:6379"), "E607", "--address is the Ray cluster of --executor ray"),
    (("--step", "0.001"), "E610", "values per coefficient"),
    (("--step", "0.02", "--tolerance", "0.1"), "E610", "more than 400 grid points"),
    (("--step", "0.3", "--tolerance", "0.01"), "E611", "no grid point has alpha x beta^2 x gamma^2 within 0.01 x 2"),
    (("--data", "no/such/folder"), "E608", "no/such/folder"),
])
def test_usage_errors_come_before_any_work(tmp_path: Path, args: tuple[str, ...], code: str, message: str) -> None:
    out = tmp_path / "g"
    result = _grid(out, *args)
    assert result.exit_code == 2, result.output
    assert f"error[{code}]" in result.stderr and message in result.stderr, result.stderr
    assert "Traceback" not in result.output and not out.exists()


def test_a_search_space_or_the_spec_itself_is_refused(tmp_path: Path) -> None:
    space = _grid(tmp_path / "s", spec=ROOT / "specs" / "efficientnet_space.eff")
    assert space.exit_code == 2 and "error[E605]" in space.stderr and "-->" in space.stderr
    spec = tmp_path / "tiny.eff"
    spec.write_text(TINY.read_text(encoding="utf-8"), encoding="utf-8")
    itself = _grid(tmp_path / "w", "--write", str(spec), spec=spec)
    assert itself.exit_code == 2 and "error[E405]" in itself.stderr and "the spec this command reads" in itself.stderr
    assert not (tmp_path / "w").exists()


def test_the_papers_coefficients_are_among_b0s_candidates() -> None:
    """On efficientnet_b0 with the paper's constraint and step, the candidates include (1.2, 1.1, 1.15)."""
    options = gridmod.GridOptions(spec="efficientnet_b0", out=Path("unused"))
    points = gridmod.check_options(options)
    assert len(points) == 109
    assert (Fraction(6, 5), Fraction(11, 10), Fraction(23, 20)) in [(p.alpha, p.beta, p.gamma) for p in points]


@pytest.mark.slow
def test_the_trained_grid_on_digits(tmp_path: Path) -> None:
    """The issue's command: one epoch per candidate on digits, step 0.1, tolerance 0.03."""
    out, new = tmp_path / "g", tmp_path / "new.eff"
    result = _grid(out, "--data", "digits", "--epochs", "1", "--step", "0.1", "--tolerance", "0.03", "--seed", "0",
                   "--device", "cpu", "--write", str(new))
    assert result.exit_code == 0, result.output
    lines = _lines(out)
    assert len(lines) == 12
    for t in lines:
        a, b, g = _exact(t["alpha"]), _exact(t["beta"]), _exact(t["gamma"])
        assert abs(a * b * b * g * g - 2) <= Fraction(3, 50)
        assert t["status"] == "ok" and t["accuracy"] > 0.5  # chance is 0.1
    best = max(lines, key=lambda t: (t["accuracy"], -t["macs"], -t["candidate"]))
    net = effdsl.parse_spec(new)
    assert (net.scaling.alpha, net.scaling.beta, net.scaling.gamma) == (best["alpha"], best["beta"], best["gamma"])
    assert [effdsl.compile_spec(new, phi=p).summary.macs for p in (0, 1)] == \
        [effdsl.compile_spec(TINY).summary.macs, best["macs"]]


@pytest.mark.slow
def test_ctrl_c_keeps_the_finished_candidates_and_resume_finishes(tmp_path: Path) -> None:
    out = tmp_path / "g"
    args = ["grid", str(TINY), "--epochs", "1", "--step", "0.1", "--tolerance", "0.03", "--device", "cpu",
            "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-m", "effdsl", *args], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True, text=True)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            if (out.exists() and len(records.read_trials(out, "grid.jsonl", "candidate")) >= 2) \
                    or process.poll() is not None:
                break
            time.sleep(0.2)
        os.killpg(process.pid, signal.SIGINT)  # as Ctrl-C: the grid and its worker
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 130, stderr
    assert "continue with --resume" in stderr and "Traceback" not in stderr
    done = records.read_trials(out, "grid.jsonl", "candidate")
    assert 2 <= len(done) < 12 and all(t["status"] == "ok" for t in done)
    assert f"candidates: {len(done)} of 12" in (out / "report.md").read_text(encoding="utf-8")
    kept = (out / "grid.jsonl").read_bytes()
    result = CliRunner().invoke(app, [*args, "--resume"])
    assert result.exit_code == 0, result.output
    assert (out / "grid.jsonl").read_bytes().startswith(kept) and len(_lines(out)) == 12


def test_a_grid_where_nothing_finishes_writes_no_spec(tmp_path: Path) -> None:
    """Every training diverges (a learning rate of 1e12): recorded, reported, and --write declines."""
    from effdsl.search.proxy import TrainConfig

    options = gridmod.GridOptions(spec=str(TINY), out=tmp_path / "nan", step=Fraction(1, 10),
                                  tolerance=Fraction(3, 100), device="cpu", train=TrainConfig(lr=1e12))
    result = gridmod.run_grid(options)
    assert [r["status"] for r in result.records] == ["nan"] * 12 and all(r["error"] for r in result.records)
    assert result.best is None and gridmod.best_coefficients(result) is None
    report = (tmp_path / "nan" / "report.md").read_text(encoding="utf-8")
    assert "## Best" not in report and "- candidate 0: nan (the training loss became" in report
    assert json.loads((tmp_path / "nan" / "grid.json").read_text(encoding="utf-8"))["train"]["lr"] == 1e12


def test_a_candidate_beyond_the_compilers_limits_is_recorded_not_built() -> None:
    from effdsl.scaling.grid import Coefficients

    net = effdsl.parse_spec(TINY.read_text(encoding="utf-8").replace("input 1 x 32", "input 1 x 9000"))
    small = gridmod.compile_candidate(net, 0, Coefficients(Fraction(2), Fraction(1), Fraction(1)), 4.0, 1, 10)
    assert small.error is None and small.resolution == 9000
    large = gridmod.compile_candidate(net, 1, Coefficients(Fraction(1), Fraction(1), Fraction(7, 5)), 4.0, 1, 10)
    assert large.error is not None and large.error.startswith("E302: phi 4 scales the network to a resolution of")
    assert large.macs is None and large.key == "error:1"


def test_resume_refuses_a_record_that_is_not_this_grids(zero_cost_grid, tmp_path: Path) -> None:
    whole, _, _ = zero_cost_grid
    out = tmp_path / "tampered"
    out.mkdir()
    (out / "grid.json").write_text((whole / "grid.json").read_text(encoding="utf-8"), encoding="utf-8")
    lines = _lines(whole)[:3]
    lines[2]["gamma"] = 1.5  # another grid point than the grid has there
    (out / "grid.jsonl").write_text("".join(json.dumps(t) + "\n" for t in lines), encoding="utf-8")
    result = _grid(out, *ZERO_COST, "--resume")
    assert result.exit_code == 2 and "error[E609]: candidate 2 in" in result.stderr
    assert len(_lines(out)) == 3  # nothing was run or added


def test_without_the_search_packages_the_grid_says_which_command_needs_them(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "sklearn" else real(name, *a))
    result = _grid(tmp_path / "g", *ZERO_COST)
    assert result.exit_code == 2
    assert "error[E606]: effdsl grid needs scikit-learn, which is not installed" in result.stderr
    assert "pip install 'effdsl[search]'" in result.stderr and not (tmp_path / "g").exists()
