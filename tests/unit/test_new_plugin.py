"""The scaffold writes a documented plugin that loads and passes every conformance check as generated."""
import pytest

from framework import discovery
from framework.extend import conformance
from framework.new_plugin import main, write_plugin


@pytest.mark.parametrize("kind", ["activation", "loss", "optimizer"])
@pytest.mark.usefixtures("isolated")
def test_generated_plugin_passes_the_checker(tmp_path, capsys, kind):
    assert main([kind, f"my_{kind}", "--dir", str(tmp_path)]) == 0
    path = tmp_path / f"my_{kind}.py"
    assert capsys.readouterr().out == (f"wrote {path}\n"
                                       f"check it: python -m framework.check_plugins my_{kind} --paths {tmp_path}\n")
    text = path.read_text()
    assert f'register("my_{kind}")' in text and "TODO" in text and "Shapes:" in text
    assert discovery.load_paths([tmp_path]) == [path]
    registry = conformance.KINDS[kind]
    failed = [o for check in conformance.CHECKS[kind] if not (o := conformance.run(registry, f"my_{kind}", check)).ok]
    assert not failed, "\n".join(map(str, failed))


def test_refuses_to_overwrite_or_to_take_a_registered_or_invalid_name(tmp_path):
    write_plugin("loss", "mine", tmp_path)
    with pytest.raises(FileExistsError, match="mine.py exists"):
        write_plugin("loss", "mine", tmp_path)
    with pytest.raises(ValueError, match="activation 'relu' is already registered"):
        write_plugin("activation", "relu", tmp_path)
    with pytest.raises(ValueError, match="must be lowercase letters, digits and '_'"):
        write_plugin("activation", "My-Act", tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["mine.py"]


def test_cli_reports_errors_as_usage_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["activation", "relu", "--dir", str(tmp_path)])
    assert e.value.code == 2 and "already registered" in capsys.readouterr().err
