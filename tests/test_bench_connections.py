"""`manage.py bench_connections`: a small run end to end (it starts its own
`serve`), and its refusal to aim anywhere but this machine."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command

from config.connection_bench import BenchError, loopback_target


@pytest.mark.parametrize(
    "url", ["http://192.0.2.1:8000", "http://10.0.0.1", "https://127.0.0.1:8000", "ftp://localhost"]
)
def test_refuses_targets_off_this_machine(url):
    with pytest.raises(BenchError):
        loopback_target(url)
    with pytest.raises(CommandError):
        call_command("bench_connections", "--url", url, "--token", "t")


def test_accepts_loopback_targets():
    assert loopback_target("http://127.0.0.1:8123") == ("127.0.0.1", 8123)
    assert loopback_target("http://127.1.2.3:80") == ("127.1.2.3", 80)


def test_url_needs_a_token():
    with pytest.raises(CommandError, match="--token"):
        call_command("bench_connections", "--url", "http://127.0.0.1:9")


@pytest.mark.slow
def test_small_run_against_its_own_serve(capsys):
    call_command(
        "bench_connections", "--half-open", "30", "--requests", "3", "--no-workers", "--close-wait", "0", "--json"
    )
    figures = json.loads(capsys.readouterr().out)
    assert figures["half_open_held"] == 30
    for phase in ("quiet", "flood"):
        assert figures[phase]["answered"] == 3, figures
        assert figures[phase]["p50_ms"] <= figures[phase]["max_ms"]
