"""docker/train.Dockerfile is the image the Vertex jobs run: `mlflow run .` needs the MLproject in its working
folder, and its torch must be the project's pin (no Docker or buildah build here: see the README)."""

from __future__ import annotations

import re

from conftest import REPO


def pins() -> dict[str, str]:
    text = (REPO / "pyproject.toml").read_text()
    return dict(re.findall(r'"(torch|torchvision|mlflow)==([^"]+)"', text))


def test_training_image_runs_the_mlproject_with_the_pinned_torch() -> None:
    text = (REPO / "docker" / "train.Dockerfile").read_text()
    workdir = re.findall(r"^WORKDIR (\S+)", text, re.M)
    assert workdir == ["/app"]
    copied = " ".join(re.findall(r"^COPY (.+)$", text, re.M))
    for needed in ("MLproject", "conda.yaml", "pyproject.toml", "gatrec"):
        assert needed in copied
    p = pins()
    assert f"torch=={p['torch']}" in text and f"torchvision=={p['torchvision']}" in text
    assert re.search(r"^ARG BASE=nvidia/cuda:\S+", text, re.M)  # the GPU variant by default
    assert "python3.11" in text


def test_mlflow_image_matches_the_pin() -> None:
    text = (REPO / "docker" / "mlflow.Dockerfile").read_text()
    assert f'"mlflow=={pins()["mlflow"]}"' in text
