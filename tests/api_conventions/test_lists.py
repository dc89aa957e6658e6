"""List conventions of /jobs and /programs: django-filter filters, `?ordering=`,
cursor pages for jobs, limit/offset for the other lists; bad input is a 400
naming the parameter."""

from __future__ import annotations

import pytest

from jobs.models import JobStatus
from tests.factories import make_job, make_program

pytestmark = pytest.mark.django_db


def ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


def all_pages(client, url: str) -> list[str]:
    seen, pages = [], 0
    while url:
        body = client.get(url).json()
        seen += [row["id"] for row in body["results"]]
        url, pages = body["next"], pages + 1
        assert pages < 50
    return seen


@pytest.fixture
def mixed_jobs(user):
    low = make_program(user, key="low", priority=1, device_type="analog")
    high = make_program(user, key="high", priority=9, device_type="digital")
    make_job(low, key="a")
    make_job(high, key="b", status=JobStatus.DONE)
    make_job(low, key="c", status=JobStatus.RUNNING)
    make_job(high, key="d")
    make_job(low, key="e", status=JobStatus.FAILED, error="x")
    return ["a", "b", "c", "d", "e"]


@pytest.mark.parametrize(
    "ordering, expected",
    [
        ("created", ["a", "b", "c", "d", "e"]),
        ("-created", ["e", "d", "c", "b", "a"]),
        ("priority", ["a", "c", "e", "b", "d"]),
        ("-priority", ["b", "d", "a", "c", "e"]),
        ("status", ["b", "e", "a", "d", "c"]),  # done, failed, queued, queued, running
        ("-status", ["c", "a", "d", "e", "b"]),  # ties keep submission order
    ],
)
def test_job_ordering_holds_across_cursor_pages(api, mixed_jobs, ordering, expected):
    assert ids(api.get(f"/jobs?ordering={ordering}&limit=10")) == expected
    # Two rows a page: the cursor continues exactly where the page ended.
    assert all_pages(api, f"/jobs?ordering={ordering}&limit=2") == expected


def test_default_job_ordering_is_submission_order(api, mixed_jobs):
    assert ids(api.get("/jobs")) == mixed_jobs


def test_program_ordering(api, user):
    for key, priority in [("p1", 5), ("p2", 1), ("p3", 5)]:
        make_program(user, key=key, priority=priority)
    assert ids(api.get("/programs")) == ["p3", "p2", "p1"]  # newest first, as before
    assert ids(api.get("/programs?ordering=created")) == ["p1", "p2", "p3"]
    assert ids(api.get("/programs?ordering=-priority")) == ["p1", "p3", "p2"]
    assert ids(api.get("/programs?ordering=priority&limit=1&offset=1")) == ["p1"]


def test_filters_keep_their_behaviour(api, mixed_jobs):
    assert ids(api.get("/jobs?status=queued,running")) == ["a", "c", "d"]
    assert ids(api.get("/jobs?status=queued&device_type=digital")) == ["d"]
    assert ids(api.get("/jobs?program=low&ordering=-created")) == ["e", "c", "a"]
    assert ids(api.get("/jobs?status=")) == mixed_jobs
    assert ids(api.get("/programs?status=failed")) == ["low"]


def test_cursor_pages_neither_repeat_nor_skip_when_jobs_arrive(api, user):
    program = make_program(user, key="p")
    for key in "abcd":
        make_job(program, key=key)
    first = api.get("/jobs?limit=2").json()
    make_job(program, key="z")  # arrives between two pages
    assert [r["id"] for r in first["results"]] + all_pages(api, first["next"]) == ["a", "b", "c", "d", "z"]


def test_a_cursor_follows_filters_and_visibility(api, other_api, user, other_user):
    mine, theirs = make_program(user, key="mine"), make_program(other_user, key="theirs")
    for i in range(3):
        make_job(mine, key=f"m{i}")
        make_job(theirs, key=f"t{i}")
    first = api.get("/jobs?limit=1").json()
    # Another user replaying my cursor still sees only their own jobs.
    assert all(row["id"].startswith("t") for row in other_api.get(first["next"]).json()["results"])
    assert all_pages(api, "/jobs?limit=1") == ["m0", "m1", "m2"]


@pytest.mark.parametrize(
    "query, field",
    [
        ("status=AAA", "status"),
        ("status=queued,nope", "status"),
        ("ordering=size", "ordering"),
        ("ordering=--created", "ordering"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=ten", "limit"),
        ("limit=5&limit=5", "limit"),
        ("offset=10", "offset"),
        ("cursor=garbage!", "cursor"),
        ("cursor=", "cursor"),  # no page ever gives an empty cursor
        ("cursor=eyJvIjoiY3JlYXRlZCJ9", "cursor"),  # valid base64 JSON, fields missing
        ("status=queued&status=done", "status"),
        ("device_type=a%00b", "device_type"),
        ("program=" + "x" * 101, "program"),
    ],
)
def test_bad_job_list_input_is_a_400_naming_the_parameter(api, mixed_jobs, query, field):
    response = api.get(f"/jobs?{query}")
    assert response.status_code == 400, response.content
    assert field in response.json()


def test_a_cursor_of_another_ordering_is_refused(api, mixed_jobs):
    next_url = api.get("/jobs?limit=1&ordering=priority").json()["next"]
    cursor = next_url.split("cursor=")[1].split("&")[0]
    response = api.get(f"/jobs?ordering=status&cursor={cursor}")
    assert response.status_code == 400 and "cursor" in response.json()


@pytest.mark.parametrize(
    "query, field",
    [("offset=null&offset=null", "offset"), ("limit=-1", "limit"), ("offset=-5", "offset"), ("ordering=x", "ordering")],
)
def test_bad_program_list_input_is_a_400(api, query, field):
    response = api.get(f"/programs?{query}")
    assert response.status_code == 400 and field in response.json()
