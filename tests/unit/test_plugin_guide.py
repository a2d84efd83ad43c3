"""plugins/README.md works as written: its python blocks are plugin files that load and pass the checker,
its pyproject snippet declares an entry point that discovery finds, and a broken copy fails loudly. Its sweep
command, run as a process: tests/integration/test_plugin_guide_sweep.py."""
import re
import sys
from pathlib import Path

import pytest
import tomllib

from framework import discovery
from framework.check_plugins import main
from framework.errors import ConfigError
from framework.extend import conformance
from framework.registry import activations
from framework.train import build
from framework.train import main as train_main
from tests.helpers import make_cfg
from tests.unit.test_discovery import write_dist_info

GUIDE = Path(__file__).resolve().parents[2] / "plugins" / "README.md"
TEXT = GUIDE.read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", TEXT, re.S)
HEADER = re.compile(r"# my_plugins/(\w+\.py)\n")
NAMES = re.findall(r'@\w+\.register\("(\w+)"\)', "".join(BLOCKS))
SNAKE = next(block for block in BLOCKS if 'register("snake")' in block)
RIGHT, WRONG = "xp.sin(2 * self.a * z)", "xp.sin(self.a * z)"   # Snake's derivative, and a wrong one


def write_blocks(folder: Path, package: bool = False) -> Path:
    """Each python block of the guide as the file its first line names; `package` adds an __init__."""
    folder.mkdir(parents=True)
    for block in BLOCKS:
        (folder / HEADER.match(block)[1]).write_text(block)
    if package:
        modules = sorted(p.stem for p in folder.glob("[!_]*.py"))
        (folder / "__init__.py").write_text(f"from . import {', '.join(modules)}\n")
    return folder


def check(capsys, *args: str) -> tuple[int, str]:
    """(exit status, stdout) of `python -m framework.check_plugins ARGS`, run in this process."""
    code = main(list(args))
    return code, capsys.readouterr().out


def quoted(first_line: str) -> str:
    """The rest of the guide's text block whose first line is `first_line` (the quoted checker output)."""
    return re.search(rf"```text\n{re.escape(first_line)}\n(.*?)```", TEXT, re.S)[1]


def masked(output: str) -> str:
    """Output with floats like 2.3e-08 masked: the guide quotes the checker's lines, not its last digits."""
    return re.sub(r"-?\d\.\d+e[-+]\d+", "<float>", output)


def test_every_python_block_names_its_file_and_the_guide_has_an_activation_losses_and_an_optimizer():
    assert all(HEADER.match(block) for block in BLOCKS), "start each python block with '# my_plugins/<file>.py'"
    assert NAMES == ["snake", "log_cosh", "quantile", "lion"] and RIGHT in SNAKE


@pytest.mark.usefixtures("isolated")
def test_guide_plugins_pass_every_check(tmp_path):
    discovery.load_paths([write_blocks(tmp_path / "my_plugins")])
    outcomes = [conformance.run(conformance.KINDS[kind], name, c) for kind, name, c in conformance.cases(NAMES)]
    assert {o.name for o in outcomes} == set(NAMES)
    assert all(o.ok for o in outcomes), "\n".join(str(o) for o in outcomes if not o.ok)


@pytest.mark.usefixtures("isolated")
def test_checker_cli_passes_the_guide_and_fails_a_wrong_derivative(tmp_path, capsys):
    code, out = check(capsys, "--paths", str(write_blocks(tmp_path / "my_plugins")))
    assert code == 0, out
    assert masked(out) == masked(quoted("$ python -m framework.check_plugins --paths ~/my_plugins"))

    broken = tmp_path / "my_plugins_broken" / "snake.py"
    broken.parent.mkdir()
    broken.write_text(SNAKE.replace(RIGHT, WRONG))
    discovery._state = discovery._State()  # a fresh process: the broken snake is the only one
    for registry in conformance.KINDS.values():
        registry._entries.pop("snake", None)
        registry._entries.pop("log_cosh", None)
    code, out = check(capsys, "--paths", str(broken.parent))
    assert code == 1, out
    failure = re.search(r"^FAIL activation 'snake' gradcheck: gradcheck activation 'snake': FAILED, max relative "
                        r"error \S+ \(tol 1e-06\) at z\[\d+, \d+\]: analytic \S+, numeric \S+$", out, re.M)
    assert failure, out
    assert masked(out) == masked(quoted("$ python -m framework.check_plugins --paths ~/my_plugins_broken"))


@pytest.mark.usefixtures("isolated")
def test_the_guide_quotes_the_train_clis_errors_as_it_prints_them(tmp_path, monkeypatch, capsys):
    """A taken name (printed by the train CLI before Hydra starts) and a wrong derivative (stopped before training)."""
    folder = tmp_path / "my_plugins"
    folder.mkdir()
    (folder / "relu.py").write_text(SNAKE.replace('register("snake")', 'register("relu")'))
    monkeypatch.setattr(sys, "argv", ["train", f"plugins.paths=[{folder}]"])
    with pytest.raises(SystemExit) as e:
        train_main()
    assert e.value.code == 1
    printed = capsys.readouterr().err.strip().replace(str(folder), "/home/me/my_plugins")
    assert printed == quoted('$ python -m framework.train "plugins.paths=[/home/me/my_plugins]"').strip()

    broken = tmp_path / "my_plugins_broken"
    broken.mkdir()
    (broken / "snake.py").write_text(SNAKE.replace(RIGHT, WRONG))
    discovery.load_paths([broken])
    with pytest.raises(ConfigError) as e:
        build(make_cfg(f"plugins.paths=[{broken}]", "activation=snake"))
    command = '$ python -m framework.train "plugins.paths=[/home/me/my_plugins_broken]" activation=snake'
    assert masked(f"error: {e.value}") == masked(quoted(command).strip())


@pytest.mark.usefixtures("isolated")
def test_pyproject_snippet_declares_an_entry_point_that_discovery_imports(tmp_path, monkeypatch):
    toml = tomllib.loads(re.search(r"```toml\n(.*?)```", TEXT, re.S)[1])
    eps = toml["project"]["entry-points"][discovery.ENTRY_POINT_GROUP]
    assert eps == {"my_plugins": "my_plugins"}
    write_blocks(tmp_path / "my_plugins", package=True)
    write_dist_info(tmp_path, toml["project"]["name"], eps)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert set(NAMES) <= {name for registry in conformance.KINDS.values() for name in registry.names()}
        assert activations.get("snake").__module__ == "my_plugins.snake"
    finally:
        for name in [m for m in sys.modules if m.split(".")[0] == "my_plugins"]:
            del sys.modules[name]
