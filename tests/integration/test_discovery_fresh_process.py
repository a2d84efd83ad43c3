"""Discovery in a fresh interpreter: no test-only state, the real startup path."""
import json
import os
import subprocess
import sys

from framework import discovery
from tests.unit.test_discovery import write_activation, write_dist_info


def test_a_fresh_process_finds_all_three_sources_and_imports_no_optional_backend(tmp_path):
    """No test-only state: the real startup path of a new interpreter. Registering the built-in cupy
    backend does not import CuPy (plugins/backends.py imports it when a cupy backend is created)."""
    write_activation(tmp_path / "env", "disc_proc_env")
    write_activation(tmp_path / "site", "disc_proc_ep")
    write_activation(tmp_path / "cfg", "disc_proc_cfg")
    write_dist_info(tmp_path / "site", "disc-proc", {"proc": "disc_proc_ep"})
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "site"), **{discovery.ENV_VAR: str(tmp_path / "env")})
    code = (f"import json, sys; from framework import discovery; discovery.load_paths([{str(tmp_path / 'cfg')!r}]); "
            "from framework.registry import activations, backends; "
            "print(json.dumps([activations.names(), backends.names(), 'cupy' in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    names, backend_names, cupy_imported = json.loads(out)
    assert {"disc_proc_env", "disc_proc_ep", "disc_proc_cfg", "sigmoid"} <= set(names), names
    assert "cupy" in backend_names and not cupy_imported, (backend_names, "plugins/backends.py imported cupy")
