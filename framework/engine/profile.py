"""The profiler callback (`debug=profile`): cProfile from `on_train_start` to `on_train_end`, i.e. the
whole of `Trainer.fit` (every epoch, the evaluations and the other callbacks' hooks; not the data loading
before it). It writes `profile.prof` (for `python -m pstats` or snakeviz) and `profile.txt` (the `top`
functions by `sort`, file names without their folders: no absolute path of this machine) into its
folder and prints the same table.
"""
from __future__ import annotations

import cProfile
import io
import pstats
from pathlib import Path

from framework.engine.callbacks import Callback
from framework.engine.progress import echo
from framework.errors import ConfigError

SORTS = ("cumulative", "tottime", "ncalls")  # pstats keys offered by `callbacks.profiler.sort`
FILES = ("profile.prof", "profile.txt")


class Profiler(Callback):
    """cProfile of `Trainer.fit`; `directory` None: the run folder (none: the table is only printed)."""

    def __init__(self, top: int = 20, sort: str = "cumulative", directory: str | None = None):
        self.top, self.sort, self.directory = top, sort, directory
        self._profile: cProfile.Profile | None = None

    def set_folder(self, folder) -> None:
        if self.directory is None and folder is not None:
            self.directory = str(folder)

    def files(self) -> list[Path]:
        return [Path(self.directory, name) for name in FILES] if self.directory else []

    def on_train_start(self, trainer) -> None:
        self._profile = cProfile.Profile()
        try:
            self._profile.enable()
        except ValueError as e:  # Python >= 3.12: another profiler (a debugger, coverage's) holds the hook
            self._profile = None
            raise ConfigError(f"callbacks.profiler: cProfile cannot start ({e}); stop the other profiler") from None

    def on_train_end(self, trainer, status: str, logs: dict[str, float]) -> None:
        if self._profile is None:
            return
        self._profile.disable()
        text = io.StringIO()
        pstats.Stats(self._profile, stream=text).strip_dirs().sort_stats(self.sort).print_stats(self.top)
        table = f"profile of Trainer.fit ({status}), top {self.top} by {self.sort} time:\n{text.getvalue().strip()}"
        if self.directory:
            folder = Path(self.directory)
            folder.mkdir(parents=True, exist_ok=True)
            self._profile.dump_stats(folder / FILES[0])
            (folder / FILES[1]).write_text(table + "\n")
            table += f"\nprofile: {folder / FILES[0]} (python -m pstats), {folder / FILES[1]}"
        echo(table)
        self._profile = None
