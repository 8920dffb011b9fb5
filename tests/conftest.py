"""Shared test configuration.

``pytest --update-goldens`` rewrites the golden files under tests/golden/ instead of
comparing against them; review the diff before committing.

A test that needs a tool outside Python's reach (Chromium, a build backend) skips
without it and says why; with ``CI=true`` in the environment it fails instead, so that
CI never passes with a capability left untested.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parent.parent
ON_CI = os.environ.get("CI", "").strip().lower() == "true"

settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "long", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("EFFDSL_HYPOTHESIS_PROFILE", "ci"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-goldens", action="store_true", help="rewrite golden files")


@pytest.fixture
def update_goldens(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-goldens"))


def check_golden(path: Path, actual: str, update: bool) -> None:
    """Compare ``actual`` with the golden file at ``path`` (or rewrite it)."""
    if update or not path.exists():
        if not update:
            pytest.fail(f"golden file {path} is missing; run pytest --update-goldens and review it")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return
    expected = path.read_text(encoding="utf-8")
    assert actual == expected, f"{path.name} differs from its golden file (pytest --update-goldens to rewrite)"


def require(available: bool, reason: str) -> None:
    """Skip the calling test unless ``available``; on CI (``CI=true``) fail with ``reason``."""
    if available:
        return
    if ON_CI:
        pytest.fail(f"{reason} [CI=true: a missing tool fails instead of skipping]", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def example_ops(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The example plug-in package (tests/plugins/effdsl_example_ops), installed for the session."""
    from plugin_env import install_example_ops

    install_example_ops(tmp_path_factory.mktemp("site"))
