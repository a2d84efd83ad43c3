"""Secrets never recorded: `mask_secrets(text)` is the one place that hides them.

Every value that is recorded (run-log records, hence params and tags in the store; config.yaml and
overrides.yaml artifacts; Hydra's `.hydra/*.yaml` and `multirun.yaml`; acknowledgements; a failed
sweep job's report) or printed (store URIs in messages; every log line: `mask_log_records`) goes
through it; the real value is used only to connect.

    mask_secrets("postgresql://alice:S3cret@db:5432/mlflow")  -> "postgresql://alice:***@db:5432/mlflow"
    mask_secrets("https://host/x?token=abc&v=1")             -> "https://host/x?token=***&v=1"
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path

MASK = "***"
# scheme://user:PASSWORD@  (the password: no whitespace, quote, backslash, '/' or '@': one URI, also inside JSON/YAML;
# the colons may be escaped, as Hydra writes overrides: postgresql\://alice\:pw@host, in JSON with \\)
_USERINFO = re.compile(r"(?P<head>\\*://[^\s:/@\"'\\]*\\*:)(?P<secret>[^\s/@\"'\\]+)(?=@)")
# ?token=SECRET / &password=SECRET in a URI's query
_QUERY = re.compile(r"(?P<head>[?&](?:password|passwd|pwd|token|access_token|secret|api_key|apikey|sig|signature)=)"
                    r"(?P<secret>[^\s&#\"'\\]+)", re.IGNORECASE)


def mask_secrets(text: str) -> str:
    """`text` with every URI password (`scheme://user:***@host`) and secret query value (`?token=***`) masked."""
    if "://" in text:  # matched from the "://" on (whatever the scheme): linear in len(text)
        text = _USERINFO.sub(lambda m: m["head"] + MASK, text)
    return _QUERY.sub(lambda m: m["head"] + MASK, text) if "=" in text else text


def mask_log_records() -> None:
    """From now on every log record of this process is created with its secrets masked (`python -m
    framework.train` installs it first: Hydra reconfigures its log handlers per launch and per job, and its
    launchers log each job's overrides, "#0 : tracking.uri=..."). Installed once; other records untouched."""
    make = logging.getLogRecordFactory()
    if getattr(make, "masks_secrets", False):
        return

    def masked_record(*args, **kwargs) -> logging.LogRecord:
        record = make(*args, **kwargs)
        message = record.getMessage()
        masked = mask_secrets(message)
        if masked != message:
            record.msg, record.args = masked, ()
        return record

    masked_record.masks_secrets = True
    logging.setLogRecordFactory(masked_record)


def mask_file(path: Path) -> None:
    """Rewrite the text file `path` with its secrets masked (atomically; untouched when it holds none)."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError):
        return
    masked = mask_secrets(text)
    if masked != text:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.masked")  # sweep jobs may mask one file at once
        tmp.write_text(masked)
        tmp.replace(path)
