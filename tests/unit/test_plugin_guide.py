"""plugins/README.md works as written: it covers all nine kinds, its python blocks are plugin files that load
and pass the checker with the output it quotes (reference errors included, small, where the reference library is
installed), its pyproject snippet declares an entry point that discovery finds, and a broken copy fails loudly.
Its run and sweep commands, run as processes: tests/integration/test_plugin_guide_sweep.py."""
import importlib
import re
import sys
from pathlib import Path

import pytest
import tomllib

from framework import discovery, registry
from framework.check_plugins import main
from framework.errors import ConfigError
from framework.extend import conformance
from framework.registry import KINDS, activations
from framework.train import build
from framework.train import main as train_main
from tests.helpers import make_cfg
from tests.unit.test_discovery import write_dist_info

GUIDE = Path(__file__).resolve().parents[2] / "plugins" / "README.md"
TEXT = GUIDE.read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", TEXT, re.S)
HEADER = re.compile(r"# my_plugins/(\w+\.py)\n")
REGISTERED = re.findall(r'@(\w+)\.register\("(\w+)"', "".join(BLOCKS))   # (registry variable, name)
NAMES = [name for _, name in REGISTERED]
SNAKE = next(block for block in BLOCKS if 'register("snake")' in block)
RIGHT, WRONG = "xp.sin(2 * self.a * z)", "xp.sin(self.a * z)"   # Snake's derivative, and a wrong one
CHECKED = re.findall(r"```text\n\$ python -m framework\.check_plugins ([\w ]+) --paths ~/my_plugins\n(.*?)```",
                     TEXT, re.S)   # (names, quoted output): one block per kind
SECTIONS = {"activation": "Activation", "loss": "Loss", "optimizer": "Optimizer", "initializer": "Initializer",
            "scheduler": "Scheduler", "dataset": "Data set", "metric": "Metric", "backend": "Backend",
            "callback": "Callback"}
REFERENCE = re.compile(r"^(\w+) +(\w+) +reference +ok +reference ([\w.]+): worst rel\. error (\S+) over .*$", re.M)
SMALL = {"initializer": 0.03}   # what "small" means: float64 against float64, 1e-12; moments of two draws, 3%


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


def section(kind: str) -> str:
    """The guide's text under `## <kind's heading>`, up to the next heading."""
    return re.search(rf"^## {SECTIONS[kind]}\n(.*?)(?=^## )", TEXT, re.S | re.M)[1]


def test_the_guide_covers_every_kind_in_the_same_order_of_parts():
    assert all(HEADER.match(block) for block in BLOCKS), "start each python block with '# my_plugins/<file>.py'"
    variables = {reg.kind: var for var, reg in vars(registry).items() if isinstance(reg, registry.Registry)}
    assert {var for var, _ in REGISTERED} == {variables[kind] for kind in KINDS}, "an example of every kind"
    assert RIGHT in SNAKE and len(set(NAMES)) == len(NAMES)
    assert sorted(n for names, _ in CHECKED for n in names.split()) == sorted(NAMES), "a checker block for each example"
    contents = TEXT.split("\n## ", 1)[0]  # the title, the introduction and the table of contents
    for kind in KINDS:
        parts = ["**Interface.**", "**Example.**", "```python", "**The checker checks**", "```text\n$ python -m "
                 "framework.check_plugins", f"**Scaffold:** `python -m framework.new_plugin {kind} "]
        text = section(kind)
        places = [text.find(part) for part in parts]
        assert -1 not in places and places == sorted(places), f"{kind}: {dict(zip(parts, places))}"
        assert f"[{SECTIONS[kind]}](#{SECTIONS[kind].lower().replace(' ', '-')})" in contents


def test_the_guide_states_each_kinds_reference_tolerance_as_the_checker_has_it():
    for kind in KINDS:
        text = section(kind)
        if "reference" not in conformance.CHECKS[kind]:  # callbacks: no check, and the section says why
            assert "It has no reference:" in text and "- `reference`:" not in text, kind
            continue
        bullet = re.search(r"^- `reference`: (.*?)(?=^\S|^- |\Z)", text, re.S | re.M)[1]
        stated = re.search(r"tolerance (\d+(?:\.\d+)?%|\de-\d+)|(exactly)", bullet)
        assert stated, f"{kind}: the reference bullet states no tolerance"
        value = 0.0 if stated[2] else float(stated[1][:-1]) / 100 if stated[1].endswith("%") else float(stated[1])
        assert value == importlib.import_module(f"framework.extend.conformance.{kind}").TOL, (kind, stated[0])


@pytest.mark.parametrize("names, quote", CHECKED, ids=[names for names, _ in CHECKED])
@pytest.mark.usefixtures("isolated")
def test_the_guide_quotes_the_checkers_output_with_small_reference_errors(tmp_path, capsys, names, quote):
    """A kind's block as the checker prints it (every check passes), its reference errors small; where the reference's
    library is not installed the checker prints a skip line instead, and this test prints that it did not compare."""
    code, out = check(capsys, *names.split(), "--paths", str(write_blocks(tmp_path / "my_plugins")))
    for quoted_line, kind, name, dotted, _ in [(m[0], *m.groups()) for m in REFERENCE.finditer(quote)]:
        printed = re.search(rf"^{kind} +{name} +reference +ok +reference {re.escape(dotted)}: (.*)$", out, re.M)
        assert printed, out
        if printed[1].startswith("skipped"):
            with capsys.disabled():
                print(f"\n{kind} {name}: reference {dotted} {printed[1]}, so its error is not compared")
            quote, out = quote.replace(quoted_line + "\n", ""), out.replace(printed[0] + "\n", "")
        else:
            assert float(REFERENCE.match(printed[0])[4]) <= SMALL.get(kind, 1e-12), printed[0]
    assert code == 0, out
    assert masked(out) == masked(quote)


@pytest.mark.usefixtures("isolated")
def test_checker_cli_fails_a_wrong_derivative(tmp_path, capsys):
    broken = tmp_path / "my_plugins_broken" / "snake.py"
    broken.parent.mkdir()
    broken.write_text(SNAKE.replace(RIGHT, WRONG))
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
        assert set(NAMES) <= {name for reg in conformance.KINDS.values() for name in reg.names()}
        assert activations.get("snake").__module__ == "my_plugins.snake"
    finally:
        for name in [m for m in sys.modules if m.split(".")[0] == "my_plugins"]:
            del sys.modules[name]
