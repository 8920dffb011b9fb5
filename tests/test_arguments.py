"""Usage errors name the Python parameter in the library and the flag on the command line."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import effdsl
from effdsl.cli import app
from effdsl.cli.reporting import FLAGS, as_flags
from effdsl.diagnostics import Diagnostic

runner = CliRunner()

# parameter=value -> (code, message in Python); the CLI says the same with the flag.
MISTAKES = {
    "phi": (25, "E402", "phi must be between -20 and 20, got 25"),
    "width": (-1, "E402", "width must be greater than 0, got -1"),
    "depth": (0, "E402", "depth must be greater than 0, got 0"),
    "resolution": (-5, "E402", "resolution must be greater than 0, got -5"),
    "num_classes": (0, "E402", "num_classes must be at least 1, got 0"),
    "in_chans": (-3, "E402", "in_chans must be at least 1, got -3"),
    "drop_rate": (1.5, "E402", "drop_rate must be at least 0 and below 1, got 1.5"),
    "drop_path_rate": (-0.1, "E402", "drop_path_rate must be at least 0 and below 1, got -0.1"),
}


@pytest.mark.parametrize("name", sorted(MISTAKES))
def test_the_library_names_the_parameter(name):
    value, code, message = MISTAKES[name]
    with pytest.raises(effdsl.EffdslError) as info:
        effdsl.compile_spec("efficientnet_b0", **{name: value})
    (diag,) = info.value.diagnostics
    assert (diag.code, diag.message, diag.arguments) == (code, message, (name,))
    assert "--" not in str(info.value)


@pytest.mark.parametrize("name", sorted(MISTAKES))
def test_the_command_line_names_the_flag(name):
    value, code, message = MISTAKES[name]
    flag = FLAGS[name]
    result = runner.invoke(app, ["compile", "efficientnet_b0", flag, str(value)])
    assert result.exit_code == 2, result.output
    assert result.stderr == f"efficientnet_b0: error[{code}]: {flag}{message[len(name):]}\n"


def test_json_diagnostics_name_the_flag_too():
    result = runner.invoke(app, ["compile", "efficientnet_b0", "--drop-path-rate", "2", "--format", "json"])
    assert result.exit_code == 2
    [diag] = json.loads(result.stderr)
    assert diag["message"] == "--drop-path-rate must be at least 0 and below 1, got 2.0"


def test_choosing_a_member_two_ways():
    with pytest.raises(effdsl.EffdslError) as info:
        effdsl.build("efficientnet_b0", preset="b3", resolution=300)
    assert str(info.value) == (
        "efficientnet_b0: error[E401]: preset and width/depth/resolution cannot be used together\n"
        "   = help: choose a member of the family one way: phi=F, preset=NAME, or width=W depth=D resolution=R")
    result = runner.invoke(app, ["compile", "efficientnet_b0", "--preset", "b3", "--resolution", "300"])
    assert result.stderr == (
        "efficientnet_b0: error[E401]: --preset and --width/--depth/--resolution cannot be used together\n"
        "   = help: choose a member of the family one way: --phi F, --preset NAME, or --width W --depth D "
        "--resolution R\n")


def test_the_parameter_budget():
    compiled = effdsl.compile_spec("efficientnet_b0")
    with pytest.raises(effdsl.EffdslError) as info:
        compiled.build(max_params=10)
    (diag,) = info.value.diagnostics
    assert diag.help == "raise it with max_params=N; the summary alone needs no weights"
    assert as_flags(diag).help == "raise it with --max-params N; the summary alone needs no weights"


def test_as_flags_rewrites_only_the_listed_parameters_as_whole_words():
    diag = Diagnostic("E402", "width must be finite, got inf; width_mult and depth stay", help="set width=W",
                      arguments=("width",))
    shown = as_flags(diag)
    assert shown.message == "--width must be finite, got inf; width_mult and depth stay"
    assert shown.help == "set --width W" and shown.arguments == ()
    unlisted = Diagnostic("E302", "width 1, depth 10000, resolution 32 scales the network to 20,000 blocks")
    assert as_flags(unlisted) is unlisted
    python_only = Diagnostic("E402", "device must be a torch device", arguments=("device",))
    assert as_flags(python_only) is python_only


def test_every_flag_is_an_option_of_compile():
    result = runner.invoke(app, ["compile", "--help"], env={"COLUMNS": "200"})
    for flag in FLAGS.values():
        assert flag in result.output
