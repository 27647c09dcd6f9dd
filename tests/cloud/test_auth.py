"""The MLflow request-auth plugin for an IAM-protected tracking server: MLflow's own client, selected by
MLFLOW_TRACKING_AUTH, sends a Google ID token for the server's URL (fetched from the ADC key file's token
endpoint, the recording server)."""

from __future__ import annotations

import pytest
from conftest import SA_EMAIL
from google.auth import jwt


@pytest.fixture
def tracking(recorder, adc, monkeypatch: pytest.MonkeyPatch) -> str:
    recorder.route("POST", "/api/2.0/mlflow/experiments/search", lambda rec, r: (200, {"experiments": []}))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", recorder.url)
    monkeypatch.setenv("MLFLOW_TRACKING_AUTH", "gatrec-google-id-token")
    return recorder.url


def test_mlflow_calls_carry_an_id_token_for_the_server(recorder, tracking) -> None:
    from mlflow import MlflowClient

    client = MlflowClient()
    client.search_experiments()
    client.search_experiments()
    calls = recorder.calls("POST", "/api/2.0/mlflow/experiments/search")
    assert len(calls) == 2
    tokens = {c.headers["authorization"].removeprefix("Bearer ") for c in calls}
    (token,) = tokens  # fetched once, reused until shortly before it expires
    claims = jwt.decode(token, verify=False)
    assert claims["aud"] == tracking and claims["email"] == SA_EMAIL
    assert len(recorder.calls("POST", "/token")) == 1
