"""effdsl search on Ray (``--executor ray``): the same trials and records as the local
executor, a worker that dies is retried and recorded, a search resumes across executors,
Ctrl-C stops the Ray trials, and the errors when Ray is missing or out of reach.

The Ray tests share one local Ray of 2 CPUs (started once for the module: Ray takes
seconds to start); the executor uses a Ray session its process already has. The local
runs they are compared with split the same 2 CPUs between their workers, since a trial's
numbers depend on its thread count.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from effdsl.cli import app
from effdsl.diagnostics import EffdslError
from effdsl.search import executor as executors
from effdsl.search import records

from conftest import ROOT, require
from test_search import SMALL_SPACE

HAS_RAY = importlib.util.find_spec("ray") is not None
CPUS = 2
RANDOM = ("--proxy", "zero-cost", "--strategy", "random", "--seed", "5", "--workers", "2")
EVOLUTION = ("--proxy", "zero-cost", "--strategy", "evolution", "--population", "3", "--tournament", "2",
             "--seed", "2", "--workers", "2")
_SECONDS = re.compile(rb'"seconds": [0-9.e+-]+|"seconds": null')


@pytest.fixture(scope="module")
def space(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("space") / "small_space.eff"
    path.write_text(SMALL_SPACE, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def crash_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The folder of the test hook that kills a trial's worker (set before Ray starts its workers)."""
    folder = tmp_path_factory.mktemp("crash")
    before = os.environ.get(executors.CRASH_DIR)
    os.environ[executors.CRASH_DIR] = str(folder)
    yield folder
    if before is None:
        os.environ.pop(executors.CRASH_DIR, None)
    else:
        os.environ[executors.CRASH_DIR] = before


@pytest.fixture(scope="module")
def ray_session(crash_dir: Path) -> Iterator[None]:
    """One local Ray of 2 CPUs for the module's searches."""
    require(HAS_RAY, "Ray is not installed (pip install 'effdsl[ray]')")
    import ray

    folder = tempfile.mkdtemp(prefix="effdsl-ray-test-")  # short: Ray's sockets live there
    ray.init(num_cpus=CPUS, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
             object_store_memory=256 * 1024 * 1024, _temp_dir=folder,
             runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
    yield
    ray.shutdown()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def two_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    """The local executor splits the 2 CPUs of the tests' Ray, whatever the machine has."""
    monkeypatch.setattr(executors, "available_cores", lambda: CPUS)


def _search(space: Path, out: Path, *args: str) -> CliRunner.Result:
    argv = ["search", str(space), "--target-macs", "300K", "--resolution", "16", "--out", str(out), *args]
    return CliRunner().invoke(app, argv)


def _ok(result: CliRunner.Result) -> CliRunner.Result:
    assert result.exit_code == 0, result.output
    return result


def _lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / records.TRIALS).read_text(encoding="utf-8").splitlines()]


def _untimed(out: Path) -> bytes:
    """trials.jsonl, byte for byte, but for the time each trial took."""
    return _SECONDS.sub(b'"seconds": -', (out / records.TRIALS).read_bytes())


@pytest.fixture(scope="module")
def local_run(space: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four trials of a random search on the local executor (2 workers on 2 CPUs)."""
    out = tmp_path_factory.mktemp("local") / "search"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(executors, "available_cores", lambda: CPUS)
        _ok(_search(space, out, *RANDOM, "--trials", "4"))
    return out


# ---------------------------------------------------------------------------- the same records


@pytest.mark.slow
def test_ray_records_the_same_trials_as_local(ray_session: None, space: Path, local_run: Path,
                                              tmp_path: Path) -> None:
    out = tmp_path / "ray"
    result = _ok(_search(space, out, *RANDOM, "--trials", "4", "--executor", "ray"))
    assert _untimed(out) == _untimed(local_run)
    trials = _lines(out)
    assert [t["trial"] for t in trials] == [0, 1, 2, 3]
    assert all(t["status"] == "ok" and t["retries"] == 0 and t["score"] > 0 for t in trials)
    assert (out / records.BEST).read_bytes() == (local_run / records.BEST).read_bytes()
    assert json.loads((out / records.SETTINGS).read_text()) == json.loads((local_run / records.SETTINGS).read_text())
    assert "workers 2 on ray" in result.stderr


@pytest.mark.slow
def test_a_grid_on_ray_records_what_a_local_grid_records(ray_session: None, two_cores: None, tmp_path: Path) -> None:
    """effdsl grid takes the same executors: the same candidates, outcomes and best spec."""
    spec = ROOT / "tests" / "specs" / "tiny_digits.eff"
    args = ("--proxy", "zero-cost", "--step", "0.1", "--tolerance", "0.03", "--seed", "3", "--workers", "2",
            "--device", "cpu")
    outs = {}
    for kind in ("local", "ray"):
        outs[kind] = tmp_path / kind
        _ok(CliRunner().invoke(app, ["grid", str(spec), "--out", str(outs[kind]), *args, "--executor", kind,
                                     "--write", str(tmp_path / f"{kind}.eff")]))
    grids = {kind: _SECONDS.sub(b'"seconds": -', (out / "grid.jsonl").read_bytes()) for kind, out in outs.items()}
    assert grids["ray"] == grids["local"]
    lines = [json.loads(line) for line in (outs["ray"] / "grid.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(lines) >= 5 and all(line["status"] == "ok" for line in lines)
    assert (tmp_path / "ray.eff").read_bytes() == (tmp_path / "local.eff").read_bytes()


# ---------------------------------------------------------------------------- worker deaths


@pytest.mark.slow
def test_a_trial_whose_ray_worker_dies_is_retried_and_recorded(ray_session: None, crash_dir: Path, space: Path,
                                                                local_run: Path, tmp_path: Path) -> None:
    (crash_dir / "crash-1").write_text("1", encoding="utf-8")  # trial 1's first attempt kills its worker
    out = tmp_path / "ray"
    result = _ok(_search(space, out, *RANDOM, "--trials", "4", "--executor", "ray"))
    assert not (crash_dir / "crash-1").exists()
    trials = _lines(out)
    assert [t["retries"] for t in trials] == [0, 1, 0, 0]
    assert all(t["status"] == "ok" for t in trials)
    # the retried trial scores what it scores without a death
    retried = _untimed(out).replace(b'"retries": 1', b'"retries": 0')
    assert retried == _untimed(local_run)
    assert "rerun after their worker died: trial 1" in result.stderr


@pytest.mark.slow
def test_a_trial_whose_ray_worker_always_dies_is_crashed(ray_session: None, crash_dir: Path, space: Path,
                                                         tmp_path: Path) -> None:
    (crash_dir / "crash-0").write_text("9", encoding="utf-8")  # more deaths than Tune retries
    out = tmp_path / "ray"
    result = _ok(_search(space, out, *RANDOM, "--trials", "2", "--executor", "ray"))
    (crash_dir / "crash-0").unlink()
    first, second = _lines(out)
    assert first["status"] == "crashed" and first["retries"] == 2 and first["reward"] is None
    assert "died in each of 3 attempts" in first["error"]
    assert second["status"] == "ok" and second["retries"] == 0  # and the search went on
    assert "1 crashed" in result.stderr


@pytest.mark.slow
def test_a_trial_whose_local_worker_dies_is_rerun_and_recorded(crash_dir: Path, space: Path, two_cores: None,
                                                                tmp_path: Path) -> None:
    (crash_dir / "crash-1").write_text("1", encoding="utf-8")
    out = tmp_path / "local"
    _ok(_search(space, out, "--proxy", "zero-cost", "--strategy", "random", "--trials", "2"))
    assert not (crash_dir / "crash-1").exists()
    assert [(t["status"], t["retries"]) for t in _lines(out)] == [("ok", 0), ("ok", 1)]


# ---------------------------------------------------------------------------- resume


@pytest.mark.slow
def test_resume_across_executors(ray_session: None, space: Path, two_cores: None, tmp_path: Path) -> None:
    """Evolution (children from trial 3 on, so from the trials before them): two trials on the
    local executor, two more on Ray, two more locally: the same six as one local search."""
    out = tmp_path / "resumed"
    _ok(_search(space, out, *EVOLUTION, "--trials", "2"))
    kept = (out / records.TRIALS).read_bytes()
    _ok(_search(space, out, *EVOLUTION, "--trials", "4", "--resume", "--executor", "ray"))
    assert (out / records.TRIALS).read_bytes().startswith(kept) and len(_lines(out)) == 4
    kept = (out / records.TRIALS).read_bytes()
    _ok(_search(space, out, *EVOLUTION, "--trials", "6", "--resume"))
    assert (out / records.TRIALS).read_bytes().startswith(kept) and len(_lines(out)) == 6
    whole = tmp_path / "whole"
    _ok(_search(space, whole, *EVOLUTION, "--trials", "6"))
    assert _untimed(out) == _untimed(whole)


def test_search_json_of_an_earlier_version_still_resumes(tmp_path: Path) -> None:
    """search.json used to hold the executor, which no longer decides the trials: --resume ignores it."""
    identity = {"space": "small_space", "seed": 0, "workers": 2}
    assert records.prepare(tmp_path / "s", identity, resume=False) == []
    records.append_trial(tmp_path / "s", {"trial": 0, "status": "ok"})
    records.write_json(tmp_path / "s" / records.SETTINGS, {**identity, "executor": "local"})
    assert records.prepare(tmp_path / "s", identity, resume=True) == [{"trial": 0, "status": "ok"}]
    records.write_json(tmp_path / "s" / records.SETTINGS, {**identity, "executor": "local", "seed": 1})
    with pytest.raises(EffdslError) as info:
        records.prepare(tmp_path / "s", identity, resume=True)
    assert "seed: 1 then, 0 now" in str(info.value) and "executor" not in str(info.value).split("help")[0]


# ---------------------------------------------------------------------------- Ctrl-C


@pytest.mark.slow
def test_ctrl_c_stops_the_ray_trials_and_keeps_the_records(space: Path, tmp_path: Path) -> None:
    """A real search process on its own local Ray, interrupted as a terminal does (SIGINT to the
    process group): exit 130, complete records, no Ray process left; --resume finishes it."""
    require(HAS_RAY, "Ray is not installed (pip install 'effdsl[ray]')")
    out = tmp_path / "interrupted"
    argv = [sys.executable, "-m", "effdsl", "search", str(space), "--target-macs", "300K", "--resolution", "16",
            "--proxy", "zero-cost", "--trials", "40", "--seed", "4", "--out", str(out), "--executor", "ray"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop(executors.CRASH_DIR, None)
    process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               start_new_session=True, text=True)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            if (out.exists() and len(records.read_trials(out)) >= 2) or process.poll() is not None:
                break
            time.sleep(0.2)
        os.killpg(process.pid, signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 130, stderr
    assert "continue with --resume" in stderr and "Traceback" not in stderr
    time.sleep(1.0)
    left = subprocess.run(["pgrep", "-g", str(process.pid)], capture_output=True, text=True).stdout.split()
    assert not left, f"processes of the interrupted search are still running: {left}"
    done = records.read_trials(out)
    assert 2 <= len(done) < 40 and all(t["status"] == "ok" for t in done)
    kept = (out / records.TRIALS).read_bytes()
    _ok(_search(space, out, "--proxy", "zero-cost", "--seed", "4", "--trials", str(len(done) + 1), "--resume"))
    assert (out / records.TRIALS).read_bytes().startswith(kept) and len(_lines(out)) == len(done) + 1


# ---------------------------------------------------------------------------- errors


@pytest.mark.parametrize("hidden, says", [
    (("ray", "ray.tune"), "Ray is not installed"),
    (("ray.tune",), "Ray Tune cannot be imported"),
])
def test_without_ray_the_error_says_how_to_install_it(space: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      hidden: tuple[str, ...], says: str) -> None:
    for name in hidden:  # None in sys.modules: the import fails as if the package were not there
        monkeypatch.setitem(sys.modules, name, None)
    out = tmp_path / "no-ray"
    result = _search(space, out, "--proxy", "zero-cost", "--trials", "1", "--executor", "ray")
    assert result.exit_code == 2, result.output
    assert "error[E620]" in result.stderr and says in result.stderr
    assert 'pip install "effdsl[ray]"' in result.stderr and "Traceback" not in result.output
    assert not out.exists()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_address_errors(space: Path, tmp_path: Path) -> None:
    out = tmp_path / "s"
    local = _search(space, out, "--executor", "local", "--address", "auto")
    assert local.exit_code == 2 and "error[E607]" in local.stderr and "--executor ray" in local.stderr
    require(HAS_RAY, "Ray is not installed (pip install 'effdsl[ray]')")
    client = _search(space, out, "--executor", "ray", "--address", "ray://head:10001")
    assert client.exit_code == 2 and "error[E620]" in client.stderr and "Ray Client" in client.stderr
    port = _free_port()
    started = time.monotonic()
    nobody = _search(space, out, "--executor", "ray", "--address", f"127.0.0.1:{port}")
    assert nobody.exit_code == 2 and "error[E620]" in nobody.stderr and "cannot reach the Ray head" in nobody.stderr
    assert "ray start --head" in nobody.stderr
    assert time.monotonic() - started < 60  # refused at once, not Ray's endless wait for its head
    assert not out.exists()


def test_make_executor() -> None:
    """The interface effdsl search and effdsl grid share."""
    local = executors.make_executor("local", 3)
    assert isinstance(local, executors.LocalExecutor) and local.workers == 3
    for kind, workers, address, code in (("slurm", 1, None, "E607"), ("local", 0, None, "E607"),
                                         ("local", 1, "auto", "E607")):
        with pytest.raises(EffdslError) as info:
            executors.make_executor(kind, workers, address)
        assert [d.code for d in info.value.diagnostics] == [code]
    if HAS_RAY:
        from effdsl.search.cluster import RayExecutor

        ray_executor = executors.make_executor("ray", 2, "auto")
        assert isinstance(ray_executor, RayExecutor) and ray_executor.workers == 2
