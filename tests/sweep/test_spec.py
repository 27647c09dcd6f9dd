"""The search-space file: shipped spaces load, bad ones fail before any trial with file, line and key."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from gatrec.errors import DataError
from gatrec.sweep.spec import load_space


@pytest.mark.parametrize("model", ["gat", "lightgcn", "mf"])
def test_shipped_space_loads_and_holds_the_defaults(model: str) -> None:
    space = load_space(model)
    defaults = space.defaults()
    assert defaults and set(defaults) <= set(space.params)
    config = space.config(defaults)  # the untuned settings are a valid trial
    assert config.model == model and config.lr == defaults["lr"]


def test_suggest_builds_a_config_per_trial(write_space) -> None:
    space = load_space("lightgcn", write_space(
        {"lr": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True}, "n_layers": {"type": "int", "low": 1,
                                                                                       "high": 3},
         "batch_size": [256, 512]}, {"epochs": 7, "eval_every": 2}))
    trial = optuna.create_study().ask()
    values = space.suggest(trial)
    config = space.config(values)
    assert 1e-3 <= config.lr <= 1e-2 and config.batch_size in (256, 512) and config.epochs == 7
    assert config.model_params["n_layers"] == values["n_layers"] and config.eval_every == 2


def _error(model: str, text: str, tmp_path: Path) -> DataError:
    path = tmp_path / "space.yaml"
    path.write_text(text)
    with pytest.raises(DataError) as info:
        load_space(model, path)
    return info.value


@pytest.mark.parametrize(("model", "text", "line", "field", "words"), [
    ("lightgcn", "params:\n  lr: {type: float, low: 1.0e-3, high: 1.0e-2}\n  heads: [1, 2]\n",
     3, "params.heads", "unknown key 'heads'"),
    ("gat", "params:\n  lr: {type: float, low: 1.0e-3, high: 1.0e-2}\n  dim: {type: int, low: 0, high: 64}\n",
     3, "params.dim.low", "greater than or equal to 1"),
    ("mf", "params:\n  lr: {type: float, low: 1.0e-2, high: 1.0e-3}\n", 2, "params.lr", "above high"),
    ("mf", "params:\n  lr: {type: float, low: 0, high: 1.0e-3, log: true}\n", 2, "params.lr", "low > 0"),
    ("gat", "params:\n  loss: [bpr, hinge]\n", 2, "params.loss.choices[1]", "'bpr' or 'bce'"),
    ("mf", "params:\n  lr: {type: float, low: 1.0e-3}\n", 2, "params.lr", "needs low and high"),
    ("mf", "params:\n  lr: {type: uniform, low: 1.0e-3, high: 1.0}\n", 3 - 1, "params.lr.type", "float"),
    ("mf", "params:\n  dim: [8, 16]\nfixed:\n  epochs: -1\n", 4, "fixed.epochs", "greater than or equal to 0"),
    ("mf", "params:\n  dim: [8, 16]\nfixed:\n  seed: 3\n", 4, "fixed.seed", "not searchable"),
    ("mf", "params:\n  dim: [8, 16]\nfixed:\n  dim: 8\n", 4, "fixed.dim", "both in params and in fixed"),
    ("mf", "parameters:\n  dim: [8, 16]\n", 1, "parameters", "unknown section"),
    ("mf", "params:\n  dim: [8, 16\n", None, None, "invalid YAML"),
])
def test_bad_space_names_file_line_and_key(model: str, text: str, line: int | None, field: str | None,
                                           words: str, tmp_path: Path) -> None:
    err = _error(model, text, tmp_path)
    assert err.file == str(tmp_path / "space.yaml")
    if line is not None:
        assert err.line == line, str(err)
    if field is not None:
        assert err.field == field, str(err)
    assert words in str(err)


def test_cli_reports_a_bad_space_in_one_line(gatrec, tiny_data: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("params:\n  lr: {type: float, low: 1.0e-3, high: 1.0e-2}\n  dim: {type: int, low: 0, high: 8}\n")
    res = gatrec("sweep", "--data", str(tiny_data), "--model", "mf", "--space", str(bad), "--no-mlflow")
    assert res.returncode == 2, res.stderr
    assert f"{bad}:3, field 'params.dim.low'" in res.stderr
    assert "Traceback" not in res.stderr
    assert not (tmp_path / "sweeps").exists()  # nothing was started
