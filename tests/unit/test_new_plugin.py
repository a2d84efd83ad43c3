"""The scaffold writes a documented plugin of each of the nine kinds that loads and passes every conformance
check as generated."""
import pytest

from framework import discovery
from framework.extend import conformance
from framework.new_plugin import main, write_plugin
from framework.registry import KINDS


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.usefixtures("isolated")
def test_generated_plugin_passes_the_checker(tmp_path, capsys, kind):
    assert main([kind, f"mine_{kind}", "--dir", str(tmp_path)]) == 0
    path = tmp_path / f"mine_{kind}.py"
    assert capsys.readouterr().out == (f"wrote {path}\n"
                                       f"check it: python -m framework.check_plugins mine_{kind} --paths {tmp_path}\n")
    text = path.read_text()
    assert f'register("mine_{kind}")' in text and "TODO" in text and f"--paths {tmp_path}\n" in text
    assert f"my_{kind}" not in text and "<dir>" not in text
    assert discovery.load_paths([tmp_path]) == [path]
    outcomes = [conformance.run(KINDS[kind], f"mine_{kind}", check) for check in conformance.CHECKS[kind]]
    failed = [o for o in outcomes if not o.ok]
    assert not failed, "\n".join(map(str, failed))
    skipped = [o for o in outcomes if o.figure.startswith("skipped") and "array_api_strict" not in o.figure]
    assert not skipped, "a scaffold exercises every check of its kind:\n" + "\n".join(map(str, skipped))


def test_refuses_to_overwrite_or_to_take_a_registered_or_invalid_name(tmp_path):
    write_plugin("loss", "mine", tmp_path)
    with pytest.raises(FileExistsError, match="mine.py exists"):
        write_plugin("loss", "mine", tmp_path)
    with pytest.raises(ValueError, match="activation 'relu' is already registered"):
        write_plugin("activation", "relu", tmp_path)
    with pytest.raises(ValueError, match="must be lowercase letters, digits and '_'"):
        write_plugin("activation", "My-Act", tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["mine.py"]


def test_cli_reports_errors_in_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["activation", "relu", "--dir", str(tmp_path)])
    assert e.value.code == 2 and "already registered" in capsys.readouterr().err
    assert main(["schedule", "warm", "--dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        "error: unknown plugin kind 'schedule'. Did you mean 'scheduler'? Known plugin kind names: "
        f"{', '.join(KINDS)}.\n")
    assert not list(tmp_path.iterdir())
