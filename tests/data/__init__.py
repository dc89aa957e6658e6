"""Data the tests carry with them (never read from outside the repository).

``scenarios/example.json`` is the example scenario of the exam-VM brief,
copied here so that the tests of ``schedule_vms --simulate`` run wherever the
repository is checked out."""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).resolve().parent
EXAMPLE_SCENARIO = DATA / "scenarios" / "example.json"
