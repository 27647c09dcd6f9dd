"""The MLproject entry points, the click commands and ``workflow.plan`` agree: every subcommand listed in
SUBCOMMANDS imports, every entry point is a subcommand that receives each of its parameters under the same
name, with the same default and type, and the pipeline's steps pass only parameters their entry point
declares, with values of the declared types. Any entry point added to MLproject is checked too."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from gatrec.cli import SUBCOMMANDS, cli

REPO = Path(__file__).resolve().parents[2]
ENTRY_POINTS: dict[str, Any] = yaml.safe_load((REPO / "MLproject").read_text())["entry_points"]

# Options that have no MLproject form (optional paths, flags, repeatables): named here with the reason.
NO_MLPROJECT_FORM = {"pipeline": {"input", "policy", "force", "fail_on_reject"}}
# Commands whose every other option must be an entry-point parameter.
FULL_COVERAGE = ("pipeline",)
T = click.types
TYPES = {"int": (T.IntParamType,), "float": (T.FloatParamType,), "bool": (T.BoolParamType,),
         "string": (T.StringParamType, T.Choice, T.Path), "path": (T.Path,), "uri": (T.StringParamType,)}


def command_path(entry: dict[str, Any]) -> list[str]:
    """``python -m gatrec bento build --x {x}`` -> ["bento", "build"]."""
    words = entry["command"].split()
    assert words[:3] == ["python", "-m", "gatrec"], entry["command"]
    return [w for w in words[3:] if not w.startswith(("-", "{"))][: 2]


def resolve(path: list[str]) -> click.Command:
    ctx = click.Context(cli)
    cmd = cli.get_command(ctx, path[0])
    assert cmd is not None, f"no subcommand {path[0]!r}"
    if isinstance(cmd, click.Group) and len(path) > 1:
        cmd = cmd.get_command(click.Context(cmd), path[1])
    return cmd


def click_default(opt: click.Option) -> Any:
    default = opt.default
    return None if default is None or type(default).__name__ == "Sentinel" else default  # click's UNSET


def by_flag(cmd: click.Command) -> dict[str, click.Option]:
    """Options by their long flag as an MLproject parameter name: ``--synth-users`` -> ``synth_users``."""
    return {o[2:].replace("-", "_"): p for p in cmd.params if isinstance(p, click.Option)
            for o in p.opts if o.startswith("--")}


def effective_default(command: list[str], opt: click.Option, entry: dict[str, Any]) -> Any:
    """What the command really uses when the option is not given: click's default, else (for train's
    settings) the training config's or the entry point's model's."""
    if click_default(opt) is not None or command[0] not in ("train", "synth"):
        return click_default(opt)
    if command[0] == "synth":  # the sizes of the default preset (small)
        from gatrec.data.synth import SynthConfig

        return SynthConfig.model_fields[opt.name].default
    from gatrec import models
    from gatrec.train.config import TrainConfig

    if opt.name in TrainConfig.model_fields:
        info = TrainConfig.model_fields[opt.name]
        # required by the config (e.g. model: from --model or the --config file): the entry point's is its own
        return entry["parameters"][opt.name]["default"] if info.is_required() else info.default
    model = entry["parameters"].get("model", {}).get("default")
    fields = models.get(model).Config.model_fields if model else {}
    return fields[opt.name].default if opt.name in fields else None


def mismatches(name: str, entry: dict[str, Any]) -> list[str]:
    path = command_path(entry)
    cmd = resolve(path)
    options = by_flag(cmd)
    problems = []
    for pname, spec in (entry.get("parameters") or {}).items():
        spec = spec if isinstance(spec, dict) else {"type": spec}
        opt = options.get(pname)
        if opt is None:
            problems.append(f"{name}.{pname}: no option of that name on `gatrec {' '.join(path)}`")
            continue
        if not any(re.search(rf"{re.escape(flag)} \{{{pname}\}}", entry["command"]) for flag in opt.opts):
            problems.append(f"{name}.{pname}: the command does not pass it as {opt.opts[0]} {{{pname}}}")
        kind = spec.get("type", "string")
        if not isinstance(opt.type, TYPES.get(kind, ())):
            problems.append(f"{name}.{pname}: MLproject type {kind}, click type {opt.type.name}")
        if "default" in spec and not opt.required:
            mine, theirs = effective_default(path, opt, entry), spec["default"]
            if opt.multiple or opt.is_flag and kind != "bool":
                problems.append(f"{name}.{pname}: a flag or repeatable option has no MLproject form")
            elif mine is None or str(mine) != str(theirs) and not (kind in ("int", "float")
                                                                     and float(mine) == float(theirs)):
                problems.append(f"{name}.{pname}: default {theirs!r} in MLproject, {mine!r} on the CLI")
    if name in FULL_COVERAGE:
        exempt = NO_MLPROJECT_FORM.get(name, set()) | {"help"}
        for missing in sorted(set(options) - set(entry.get("parameters") or {}) - exempt):
            if any(options[missing] is options[p] for p in entry.get("parameters") or {} if p in options):
                continue  # another spelling of an option that is passed
            problems.append(f"{name}: option --{missing.replace('_', '-')} is not an entry-point parameter")
    return problems


@pytest.mark.parametrize("name", list(SUBCOMMANDS))
def test_every_listed_subcommand_imports(name: str):
    module, _ = SUBCOMMANDS[name]
    assert isinstance(importlib.import_module(f"gatrec.cli.{module}").command, click.Command)


@pytest.mark.parametrize("name", list(ENTRY_POINTS))
def test_entry_point_agrees_with_its_command(name: str):
    assert command_path(ENTRY_POINTS[name])[0] == name, "an entry point is named for its subcommand"
    assert not (problems := mismatches(name, ENTRY_POINTS[name])), "\n".join(problems)


def test_a_drifted_default_or_type_is_caught():
    entry = yaml.safe_load(yaml.safe_dump(ENTRY_POINTS["train"]))
    entry["parameters"]["epochs"]["default"] = 299
    assert any("train.epochs: default 299" in p for p in mismatches("train", entry))
    entry = yaml.safe_load(yaml.safe_dump(ENTRY_POINTS["synth"]))
    entry["parameters"]["users"]["type"] = "float"
    assert any("synth.users: MLproject type float" in p for p in mismatches("synth", entry))
    entry = yaml.safe_load(yaml.safe_dump(ENTRY_POINTS["pipeline"]))
    del entry["parameters"]["synth_items"]
    entry["command"] = entry["command"].replace(" --synth-items {synth_items}", "")
    assert "pipeline: option --synth-items is not an entry-point parameter" in mismatches("pipeline", entry)


def test_pipeline_config_cli_and_mlproject_share_defaults():
    from gatrec.workflow import PipelineConfig

    options = by_flag(resolve(["pipeline"]))
    params = ENTRY_POINTS["pipeline"]["parameters"]
    for field, info in PipelineConfig.model_fields.items():
        opt = options[field]
        default = info.get_default(call_default_factory=True)
        if field in params:
            assert str(params[field]["default"]) == str(default), field
        if not opt.multiple and click_default(opt) is not None:
            assert str(click_default(opt)) == str(default), field


@pytest.mark.parametrize("features", ["none", "fused"])
def test_workflow_steps_pass_what_their_entry_points_declare(tmp_path: Path, features: str):
    from gatrec.workflow import PipelineConfig, plan

    for step in plan(PipelineConfig(work=tmp_path, model="gat", features=features)):
        declared = ENTRY_POINTS[step.name]["parameters"]
        assert set(step.params) <= set(declared), f"{step.name}: {set(step.params) - set(declared)}"
        for key, value in step.params.items():
            kind = declared[key].get("type", "string")
            want = {"int": int, "float": (int, float), "path": Path, "string": (str, Path)}.get(kind, object)
            assert isinstance(value, want) and not isinstance(value, bool), f"{step.name}.{key}={value!r}"
