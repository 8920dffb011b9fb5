"""effdsl search: the reward, the strategies, the records, determinism, resume, and
end-to-end searches (zero-cost, and a short training on digits) through the CLI.

The searches here use a small space at 16 pixels, so that a trained trial takes a few
seconds on two cores; the issue's own command (efficientnet_space at 32 pixels, six
trained trials, then two more with --resume) is ``test_issue_command``, marked slow.
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import effdsl
from effdsl.cli import app
from effdsl.diagnostics import EffdslError
from effdsl.search import records
from effdsl.search.executor import Job, run_job
from effdsl.search.proxy import TrainConfig
from effdsl.search.reward import make_target, mnasnet_reward, parse_count
from effdsl.search.run import SearchOptions, run_search
from effdsl.search.space import Space
from effdsl.search.strategy import Evolution, RandomSearch

from conftest import ROOT

SMALL_SPACE = """\
# A small space for tests: total stride 8, so 16-pixel digits train in seconds.
network small_space {
  input 3 x 16
  classes 10
  defaults { act silu; se 0.25 }

  stem  conv k3 s2 c16
  stage mbconv e{1,3} k{3,5} s1 c16 x1
  stage mbconv e{3,6} k{3,5} s2 c32*{0.75,1,1.5} x1+{0,+1} se{0,0.25}
  stage mbconv e{3,6} k3 s2 c{32,48} x{1,2}
  head  conv k1 c128
  pool avg
  linear
}
"""


@pytest.fixture
def small_space(tmp_path: Path) -> Path:
    path = tmp_path / "small_space.eff"
    path.write_text(SMALL_SPACE, encoding="utf-8")
    return path


def _search(space: Path, out: Path, *args: str) -> CliRunner.Result:
    argv = ["search", str(space), "--target-macs", "300K", "--resolution", "16", "--out", str(out), *args]
    return CliRunner().invoke(app, argv)


def _lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "trials.jsonl").read_text(encoding="utf-8").splitlines()]


def _without_times(trials: list[dict]) -> list[dict]:
    return [{k: v for k, v in t.items() if k != "seconds"} for t in trials]


# ---------------------------------------------------------------------------- reward and targets

def test_mnasnet_reward_soft_and_hard() -> None:
    # MnasNet, eq. 2: ACC x (cost / T)^w
    assert mnasnet_reward(0.8, 400e6, 400e6) == pytest.approx(0.8)
    assert mnasnet_reward(0.8, 800e6, 400e6) == pytest.approx(0.8 * 2 ** -0.07)
    assert mnasnet_reward(0.8, 200e6, 400e6) == pytest.approx(0.8 * 0.5 ** -0.07)
    # twice the cost needs about 5% more accuracy to rank the same
    assert mnasnet_reward(0.8 * 2 ** 0.07, 800e6, 400e6) == pytest.approx(0.8)
    # hard: w = 0 at or below the target, -1 above
    assert mnasnet_reward(0.8, 200e6, 400e6, hard=True) == 0.8
    assert mnasnet_reward(0.8, 400e6, 400e6, hard=True) == 0.8
    assert mnasnet_reward(0.8, 800e6, 400e6, hard=True) == pytest.approx(0.4)
    assert mnasnet_reward(0.8, 800e6, 400e6, w=-0.5) == pytest.approx(0.8 / math.sqrt(2))


@pytest.mark.parametrize("text, value", [("20M", 20_000_000), ("300K", 300_000), ("300k", 300_000),
                                         ("1.5G", 1_500_000_000), ("4e6", 4_000_000), ("123", 123)])
def test_counts_with_suffixes(text, value) -> None:
    assert parse_count(text, "--target-macs") == value


@pytest.mark.parametrize("args, code", [
    (("20X", None, None), "E607"), ((None, None, None), "E607"), (("20M", "1M", None), "E607"),
    ((None, None, "fast"), "E607"), (("0", None, None), "E607"),
])
def test_bad_targets(args, code) -> None:
    with pytest.raises(EffdslError) as info:
        make_target(*args)
    assert {d.code for d in info.value.diagnostics} == {code}


# ---------------------------------------------------------------------------- strategies

class _Done:
    def __init__(self, picks, reward):
        self.picks, self.reward = picks, reward


def test_random_search_is_a_function_of_the_seed() -> None:
    space = Space.load("efficientnet_space")
    a = [RandomSearch().propose(space, rng, []) for rng in [random.Random(3)] for _ in range(20)]
    b = [RandomSearch().propose(space, rng, []) for rng in [random.Random(3)] for _ in range(20)]
    assert a == b and len(set(a)) == 20


def test_evolution_mutates_the_tournament_winner() -> None:
    space = Space.load("efficientnet_space")
    rng = random.Random(0)
    history = [_Done(space.sample(rng), reward=float(i)) for i in range(4)]
    evolution = Evolution(population=4, tournament=4)  # the whole population: the best always wins
    for _ in range(20):
        child = evolution.propose(space, rng, history)
        assert sum(a != b for a, b in zip(child, history[-1].picks, strict=True)) == 1
    # aging: the population is the youngest finished trials; failed ones (no reward) do not count
    young = history + [_Done(space.sample(rng), None)]
    assert Evolution(population=4, tournament=4).propose(space, random.Random(1), young) != young[-1].picks


def test_evolution_starts_with_a_random_population() -> None:
    space = Space.load("efficientnet_space")
    history = [_Done(space.sample(random.Random(i)), 1.0) for i in range(3)]
    a = Evolution(population=4).propose(space, random.Random(9), history)
    assert a == RandomSearch().propose(space, random.Random(9), history)


# ---------------------------------------------------------------------------- records

def test_a_partial_last_line_is_cut_off(tmp_path: Path) -> None:
    records.append_trial(tmp_path, {"trial": 0, "status": "ok"})
    records.append_trial(tmp_path, {"trial": 1, "status": "ok"})
    path = tmp_path / records.TRIALS
    whole = path.read_bytes()
    path.write_bytes(whole + b'{"trial": 2, "sta')  # killed while writing
    assert [r["trial"] for r in records.read_trials(tmp_path)] == [0, 1]
    assert path.read_bytes() == whole


# ---------------------------------------------------------------------------- one trial

def test_a_trial_that_fails_is_recorded_not_raised() -> None:
    bad = run_job(Job(trial=0, text="network broken {", seed=0, proxy="zero-cost", data="digits", resolution=16))
    assert bad["status"] == "error" and "E003" in bad["error"] and bad["seconds"] >= 0
    nan = run_job(Job(trial=0, text=SMALL_SPACE.replace("{1,3}", "1").replace("{3,5}", "3")
                      .replace("{3,6}", "6").replace("c32*{0.75,1,1.5}", "c24").replace("x1+{0,+1}", "x1")
                      .replace("se{0,0.25}", "").replace("c{32,48}", "c32").replace("x{1,2}", "x1")
                      .replace("input 3", "input 1"),
                      seed=0, proxy="train", data="digits", resolution=16, train=TrainConfig(lr=1e12)))
    assert nan["status"] == "nan", nan


# ---------------------------------------------------------------------------- searches

def test_zero_cost_search_end_to_end(small_space: Path, tmp_path: Path) -> None:
    out = tmp_path / "zc"
    result = _search(small_space, out, "--proxy", "zero-cost", "--trials", "5", "--seed", "3",
                     "--strategy", "random")
    assert result.exit_code == 0, result.output
    trials = _lines(out)
    assert [t["trial"] for t in trials] == list(range(5))
    for t in trials:
        assert set(records.FIELDS) <= set(t)
        assert t["status"] == "ok" and t["accuracy"] is None and t["score"] > 0 and t["reward"] > 0
        assert t["macs"] <= 600_000  # 2 x the target: nothing above the limit is ever tried
        compiled = effdsl.compile_spec(t["spec"])
        assert (compiled.summary.params, compiled.summary.macs) == (t["params"], t["macs"])
    assert len({t["key"] for t in trials}) == 5  # no member twice
    best = max(trials, key=lambda t: t["reward"])
    assert (out / "best.eff").read_text(encoding="utf-8") == best["spec"]
    assert effdsl.compile_spec(out / "best.eff").summary.macs == best["macs"]
    report = (out / "report.md").read_text(encoding="utf-8")
    assert f"## Best: trial {best['trial']}" in report and "| rank |" in report
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "<svg" in page and 'id="target"' in page and 'id="pareto"' in page
    assert "best: trial" in result.stderr and "trials" in result.stderr


def test_trained_search_on_digits_beats_chance(small_space: Path, tmp_path: Path) -> None:
    out = tmp_path / "trained"
    result = _search(small_space, out, "--proxy", "train", "--epochs", "2", "--trials", "2", "--seed", "1",
                     "--device", "cpu")
    assert result.exit_code == 0, result.output
    trials = _lines(out)
    assert all(t["status"] == "ok" for t in trials)
    best = max(t["accuracy"] for t in trials)
    assert best > 0.5, trials  # chance is 0.1
    # deterministic on CPU: the same trial trains to the same accuracy
    again = run_job(Job(trial=0, text=trials[0]["spec"], seed=trials[0]["seed"], proxy="train", data="digits",
                        resolution=16, train=TrainConfig(epochs=2), device="cpu"))
    assert again["accuracy"] == trials[0]["accuracy"]


def test_failed_trials_are_recorded_and_the_search_goes_on(small_space: Path, tmp_path: Path) -> None:
    options = SearchOptions(space=str(small_space), target=make_target("300K", None, None), out=tmp_path / "nan",
                            trials=2, proxy="train", resolution=16, seed=0, train=TrainConfig(lr=1e12))
    result = run_search(options)
    assert [t["status"] for t in result.trials] == ["nan", "nan"]
    assert all(t["reward"] is None and t["error"] for t in result.trials)
    assert result.best is None and not (tmp_path / "nan" / "best.eff").exists()
    assert "trial 0: nan" in (tmp_path / "nan" / "report.md").read_text(encoding="utf-8")


def test_same_seed_same_trials_in_one_go_or_resumed(small_space: Path, tmp_path: Path) -> None:
    """Evolution (population 3: children from trial 3 on) in two runs equals one run of all
    the trials; another seed gives other trials."""
    evolution = ("--proxy", "zero-cost", "--seed", "2", "--population", "3", "--tournament", "2")
    out = tmp_path / "resumed"
    first = _search(small_space, out, *evolution, "--trials", "3")
    assert first.exit_code == 0, first.output
    before = (out / "trials.jsonl").read_bytes()
    more = _search(small_space, out, *evolution, "--trials", "5", "--resume")
    assert more.exit_code == 0, more.output
    assert (out / "trials.jsonl").read_bytes().startswith(before) and len(_lines(out)) == 5
    whole = _search(small_space, tmp_path / "whole", *evolution, "--trials", "5")
    assert whole.exit_code == 0
    assert _without_times(_lines(out)) == _without_times(_lines(tmp_path / "whole"))
    other = _search(small_space, tmp_path / "other", *evolution[:3], "3", *evolution[4:], "--trials", "2")
    assert other.exit_code == 0
    assert [t["key"] for t in _lines(tmp_path / "other")] != [t["key"] for t in _lines(out)][:2]


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_resume_after_a_kill(small_space: Path, tmp_path: Path, how: signal.Signals) -> None:
    """Kill a real search process mid-way (as kill -9 does, or Ctrl-C: the whole process
    group); --resume keeps its lines and finishes the rest."""
    out = tmp_path / "killed"
    argv = [sys.executable, "-m", "effdsl", "search", str(small_space), "--target-macs", "300K", "--resolution",
            "16", "--proxy", "zero-cost", "--trials", "30", "--seed", "4", "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               start_new_session=True, text=True)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            done = records.read_trials(out) if out.exists() else []
            if len(done) >= 3 or process.poll() is not None:
                break
            time.sleep(0.2)
        os.killpg(process.pid, how)  # the search and its worker
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    if how == signal.SIGINT:
        assert process.returncode == 130, stderr
        assert "continue with --resume" in stderr and "Traceback" not in stderr
        assert (out / records.REPORT_MD).is_file() and (out / records.BEST).is_file()  # what was recorded, reported
    done = records.read_trials(out)  # cuts a partial last line, if the kill left one
    n = len(done)
    assert 3 <= n < 30
    assert all(t["status"] == "ok" for t in done)  # an interrupted trial is never recorded as failed
    kept = (out / "trials.jsonl").read_bytes()
    result = _search(small_space, out, "--proxy", "zero-cost", "--trials", str(n + 2), "--seed", "4", "--resume")
    assert result.exit_code == 0, result.output
    assert (out / "trials.jsonl").read_bytes().startswith(kept)
    assert len(_lines(out)) == n + 2


def test_latency_target_measures_each_member(small_space: Path, tmp_path: Path) -> None:
    out = tmp_path / "latency"
    argv = ["search", str(small_space), "--target-latency", "1000", "--resolution", "16", "--proxy", "zero-cost",
            "--trials", "2", "--out", str(out), "--device", "cpu"]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.output
    for t in _lines(out):
        assert t["status"] == "ok" and 0 < t["latency_ms"] < 1000
        assert t["reward"] == pytest.approx(t["score"] * (t["latency_ms"] / 1000) ** -0.07)
    # above the limit (2 x 0.001 ms), a member is measured, recorded, and not scored
    slow = CliRunner().invoke(app, [*argv[:3], "0.001", *argv[4:-6], "--trials", "1", "--out",
                                    str(tmp_path / "slow"), "--device", "cpu"])
    assert slow.exit_code == 0, slow.output
    assert [t["status"] for t in _lines(tmp_path / "slow")] == ["over_limit"]
    assert "no trial finished" in slow.stderr


def test_a_small_space_runs_out(tmp_path: Path) -> None:
    space = tmp_path / "four.eff"
    space.write_text(SMALL_SPACE.replace("e{1,3} k{3,5}", "e1 k3").replace(
        "e{3,6} k{3,5} s2 c32*{0.75,1,1.5} x1+{0,+1} se{0,0.25}", "e6 k3 s2 c32 x1").replace(
        "e{3,6} k3 s2 c{32,48} x{1,2}", "e6 k{3,5} s2 c{32,48} x1"), encoding="utf-8")
    options = SearchOptions(space=str(space), target=make_target("300K", None, None), out=tmp_path / "out",
                            strategy="random", trials=10, proxy="zero-cost", resolution=16)
    result = run_search(options)
    assert Space.load(str(space)).size == 4
    assert len(result.trials) == 4 and result.exhausted
    assert "no new member within the limit" in (tmp_path / "out" / "report.md").read_text(encoding="utf-8")


def test_search_usage_errors(small_space: Path, tmp_path: Path) -> None:
    out = tmp_path / "once"
    assert _search(small_space, out, "--proxy", "zero-cost", "--trials", "1").exit_code == 0
    again = _search(small_space, out, "--proxy", "zero-cost", "--trials", "1")
    assert again.exit_code == 2 and "error[E609]" in again.stderr and "--resume" in again.stderr
    changed = _search(small_space, out, "--proxy", "zero-cost", "--trials", "2", "--seed", "9", "--resume")
    assert changed.exit_code == 2 and "seed: 0 then, 9 now" in changed.stderr
    plain = tmp_path / "plain.eff"
    plain.write_text(SMALL_SPACE.replace("e{1,3}", "e1").replace("k{3,5} s1", "k3 s1").replace(
        "e{3,6} k{3,5} s2 c32*{0.75,1,1.5} x1+{0,+1} se{0,0.25}", "e6 k3 s2 c24 x1").replace(
        "e{3,6} k3 s2 c{32,48} x{1,2}", "e6 k3 s2 c32 x1"), encoding="utf-8")
    none = _search(plain, tmp_path / "plain", "--trials", "1")
    assert none.exit_code == 2 and "error[E606]" in none.stderr
    small = _search(small_space, tmp_path / "tiny", "--resolution", "4")
    assert small.exit_code == 2 and "error[E607]" in small.stderr and "total stride" in small.stderr
    folder = _search(small_space, tmp_path / "nodata", "--data", str(tmp_path / "missing"))
    assert folder.exit_code == 2 and "error[E608]" in folder.stderr


def test_asking_for_cuda_without_it_fails_at_once(small_space: Path, tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = _search(small_space, tmp_path / "cuda", "--device", "cuda")
    assert result.exit_code == 2 and "error[E607]" in result.stderr and "no CUDA device" in result.stderr
    assert not (tmp_path / "cuda").exists()


def test_search_on_a_folder_of_images(small_space: Path, tmp_path: Path) -> None:
    from PIL import Image

    rng = random.Random(0)
    for label in ("bright", "dark"):
        (tmp_path / "images" / label).mkdir(parents=True)
        for i in range(12):
            level = rng.randint(170, 255) if label == "bright" else rng.randint(0, 85)
            Image.new("RGB", (20, 20), (level, level, level)).save(tmp_path / "images" / label / f"{i}.png")
    out = tmp_path / "folder"
    result = _search(small_space, out, "--data", str(tmp_path / "images"), "--proxy", "train", "--trials", "1",
                     "--epochs", "3", "--device", "cpu")
    assert result.exit_code == 0, result.output
    (trial,) = _lines(out)
    assert trial["status"] == "ok" and "input 3 x 16" in trial["spec"] and "classes 2" in trial["spec"]


@pytest.mark.slow
def test_issue_command(tmp_path: Path) -> None:
    """The command of the issue: six trained trials of efficientnet_space at 32 px, then two more."""
    out = tmp_path / "b0"
    args = ["search", "efficientnet_space", "--target-macs", "20M", "--resolution", "32", "--data", "digits",
            "--proxy", "train", "--epochs", "1", "--strategy", "evolution", "--seed", "1", "--out", str(out)]
    first = CliRunner().invoke(app, [*args, "--trials", "6"])
    assert first.exit_code == 0, first.output
    before = (out / "trials.jsonl").read_bytes()
    trials = _lines(out)
    best = max((t for t in trials if t["reward"] is not None), key=lambda t: t["reward"])
    assert effdsl.compile_spec(out / "best.eff").summary.macs == best["macs"]
    assert max(t["accuracy"] for t in trials) > 0.5  # chance is 0.1
    more = CliRunner().invoke(app, [*args, "--trials", "8", "--resume"])
    assert more.exit_code == 0, more.output
    assert (out / "trials.jsonl").read_bytes().startswith(before) and len(_lines(out)) == 8
    assert effdsl.compile_spec(out / "best.eff", phi=3).summary.macs > best["macs"]
