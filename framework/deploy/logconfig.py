"""``serve --log-config FILE``: logging set up by the user's own file, as uvicorn allows.

A ``.json`` file is a ``logging.config.dictConfig`` dictionary; any other is an INI file for
``logging.config.fileConfig``. Loggers that exist already are left enabled (the server's own
``framework.*`` loggers are made at import). A file that cannot be used is one line naming the
file and what is wrong with it.
"""

from __future__ import annotations

import configparser
import json
import logging.config
from pathlib import Path

from ..errors import FrameworkError

__all__ = ["load_log_config"]


def _reason(exc: BaseException) -> str:
    # dictConfig wraps the real error ("Unable to configure handler 'file'") around its
    # cause ("No such file or directory: '/nope/x.log'"): both are worth a reader's time.
    text = str(exc) or type(exc).__name__
    cause = exc.__cause__ or exc.__context__
    if cause is not None and str(cause) and str(cause) not in text:
        text = f"{text}: {cause}"
    return " ".join(text.split())


def load_log_config(path: str) -> None:
    """Configure ``logging`` from ``path`` (JSON for ``dictConfig``, else INI for ``fileConfig``).

    Raises:
        FrameworkError: one line naming the file and the problem (unreadable, not JSON, not a
            configuration ``logging`` accepts).
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise FrameworkError(
            f"cannot read --log-config {path}: {reason}; give a JSON (dictConfig) or INI "
            "(fileConfig) file"
        ) from exc
    if file.suffix.lower() == ".json":
        try:
            config = json.loads(text)
        except ValueError as exc:
            raise FrameworkError(f"--log-config {path} is not valid JSON: {exc}") from exc
        if not isinstance(config, dict):
            raise FrameworkError(
                f"--log-config {path}: expected a JSON object for logging.config.dictConfig "
                f'(with "version": 1), not a {type(config).__name__}'
            )
        config.setdefault("disable_existing_loggers", False)
        try:
            logging.config.dictConfig(config)
        except Exception as exc:  # whatever a handler's constructor raises: the file's fault
            raise FrameworkError(f"--log-config {path}: {_reason(exc)}") from exc
        return
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text, source=path)
    except configparser.Error as exc:
        raise FrameworkError(
            f"--log-config {path} is not an INI file: {_reason(exc)} (a .json file is read "
            "as dictConfig JSON)"
        ) from exc
    try:
        logging.config.fileConfig(path, disable_existing_loggers=False)
    except Exception as exc:  # whatever a handler's constructor raises: the file's fault
        reason = _reason(exc)
        if isinstance(exc, KeyError):
            reason = f"missing section or key {reason}"
        raise FrameworkError(f"--log-config {path}: {reason}") from exc
