import os

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


@pytest.fixture
def isolated(monkeypatch):
    """Fresh discovery state and registries (built-ins kept), restored after the test."""
    from framework import discovery
    from framework.registry import ALL

    discovery.load_plugins()  # the built-ins register once per process: before the snapshot
    for reg in ALL.values():
        monkeypatch.setattr(reg, "_entries", dict(reg._entries))
    monkeypatch.setattr(discovery, "_state", discovery._State())
    monkeypatch.delenv(discovery.ENV_VAR, raising=False)
