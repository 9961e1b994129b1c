"""The ``serve`` flags of the limits: each reaches its ``ServerConfig`` field."""

from __future__ import annotations

import pytest

from framework import limits
from framework.cli import build_parser
from framework.cli_limits import config_from_args
from framework.errors import FrameworkError


def _config(*flags: str) -> object:
    return config_from_args(build_parser().parse_args(["serve", "m:app", *flags]))


def test_cli_limits_no_flag_gives_the_defaults() -> None:
    config = _config()
    assert config.max_body_bytes == limits.MAX_BODY_BYTES  # type: ignore[attr-defined]
    assert config.request_timeout is None  # type: ignore[attr-defined]


def test_cli_limits_flags_reach_the_config() -> None:
    config = _config(
        "--keep-alive-timeout=65",
        "--head-timeout=10",
        "--body-timeout=0.5",
        "--request-timeout=120",
        "--write-timeout=15",
        "--tls-handshake-timeout=5",
        "--max-body-size=10MiB",
        "--max-stream-body-size=unlimited",
        "--max-header-bytes=32KiB",
        "--max-connections=100",
        "--max-in-flight=50",
        "--retry-after=3",
        "--max-requests-per-connection=unlimited",
        "--ws-max-size=16MiB",
        "--ws-max-queue=32",
        "--ws-ping-interval=none",
        "--ws-ping-timeout=5",
        "--ws-close-timeout=2.5",
    )
    assert {name: getattr(config, name) for name in vars(type(config))["__slots__"]} == {
        "keep_alive_timeout": 65.0,
        "head_timeout": 10.0,
        "tls_handshake_timeout": 5.0,
        "max_header_bytes": 32 * 1024,
        "max_request_line_bytes": limits.MAX_REQUEST_LINE_BYTES,
        "max_header_count": limits.MAX_HEADER_COUNT,
        "max_body_bytes": 10 * 1024 * 1024,
        "max_stream_body_bytes": None,
        "body_timeout": 0.5,
        "request_timeout": 120.0,
        "write_timeout": 15.0,
        "max_connections": 100,
        "max_in_flight": 50,
        "max_requests_per_connection": None,
        "retry_after": 3,
        "backlog": limits.BACKLOG,
        "ws_max_message_bytes": 16 * 1024 * 1024,
        "ws_queue_messages": 32,
        "ws_ping_interval": None,
        "ws_ping_timeout": 5.0,
        "ws_close_timeout": 2.5,
        "access_log": False,
        "access_log_format": "text",
        "forwarded_allow_ips": "127.0.0.0/8,::1",
        "h11_only": False,
    }


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--body-timeout", "0"),
        ("--body-timeout", "nan"),
        ("--max-body-size", "-5"),
        ("--max-body-size", "1.5MiB"),
        ("--max-in-flight", "0"),
        ("--write-timeout", "unlimited"),
        ("--ws-max-size", "lots"),
        ("--ws-ping-timeout", "none"),
    ],
)
def test_cli_limits_bad_values_are_one_line(
    flag: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["serve", "m:app", flag, value])
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert flag in lines[0]
    assert repr(value) in lines[0]


def test_cli_limits_config_errors_are_a_framework_error() -> None:
    args = build_parser().parse_args(["serve", "m:app"])
    with pytest.raises(FrameworkError, match="backlog must be a positive whole number"):
        config_from_args(args, backlog=0)
