"""Server-side request forgery through ``callback_url``: refused at submission
when visible, and at delivery, where the connection goes to the address that
was checked."""

from __future__ import annotations

import pytest

from core import outbound
from jobs.models import Program
from jobs.webhooks import callback_deliver
from tests.security.conftest import answer

pytestmark = pytest.mark.django_db

INTERNAL = [
    "http://127.0.0.1/hook",
    "http://localhost/hook",
    "http://LOCALHOST./hook",
    "http://[::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://[::ffff:7f00:1]/hook",
    "http://2130706433/hook",
    "http://0177.0.0.1/hook",
    "http://0x7f.1/hook",
    "http://0x7f000001/hook",
    "http://127.1/hook",
    "http://0/hook",
    "http://10.0.0.1/hook",
    "http://172.16.0.1/hook",
    "http://192.168.1.1/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::ffff:169.254.169.254]/",
    "http://100.64.0.1/hook",
    "http://224.0.0.1/hook",
    "http://255.255.255.255/hook",
    "http://240.0.0.1/hook",
    "http://0.0.0.0/hook",
    "http://[::]/hook",
    "http://[fe80::1]/hook",
    "http://[fc00::1]/hook",
    "http://[ff02::1]/hook",
    "http://[2002:7f00:1::]/hook",  # 6to4 around 127.0.0.1
    "http://[64:ff9b::a9fe:a9fe]/hook",  # NAT64 around 169.254.169.254
    "https://127.0.0.1:8443/hook",
]
MALFORMED = [
    "http://user:pw@hooks.example.com/",
    "http://user@hooks.example.com/",
    "ftp://hooks.example.com/",
    "file:///etc/passwd",
    "gopher://hooks.example.com/",
    "javascript:alert(1)",
    "http:/hooks.example.com/",
    "https:hooks.example.com",
    "http://1.2.3.4.5/",
    "http://256.1.1.1/",
    "http://[::1/",
    "http://hooks.example.com:99999/",
    "not a url",
]


def post_program(api, callback_url):
    payload = {"priority": 1, "device_type": "analog", "callback_url": callback_url, "jobs": [{}]}
    return api.post("/programs", payload, format="json")


@pytest.mark.parametrize("url", INTERNAL + MALFORMED)
def test_internal_or_malformed_callback_urls_are_a_400_naming_callback_url(api, url):
    response = post_program(api, url)
    assert response.status_code == 400, (url, response.content)
    assert "callback_url" in response.json()
    assert not Program.objects.exists()


def test_a_name_that_resolves_to_an_internal_address_at_submission_is_a_400(api, fake_dns):
    fake_dns({"intranet.example.com": [["93.184.215.14", "10.0.0.7"]]})  # one bad answer is enough
    response = post_program(api, "https://intranet.example.com/hook")
    assert response.status_code == 400 and "callback_url" in response.json()


def test_public_addresses_and_unresolvable_names_are_accepted(api, fake_dns):
    fake_dns({"hooks.example.com": [["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"]]})
    assert post_program(api, "https://hooks.example.com/x?y=1").status_code == 201
    assert post_program(api, "http://8.8.8.8:8080/hook").status_code == 201
    # Not resolvable now (DNS down, name not yet published): checked at delivery.
    assert post_program(api, "https://not-yet.example.com/hook").status_code == 201


def test_the_flat_jobs_form_cannot_set_a_callback_url(api):
    response = api.post(
        "/jobs", {"priority": 1, "device_type": "analog", "callback_url": "http://127.0.0.1/"}, format="json"
    )
    assert response.status_code == 201
    assert Program.objects.get().callback_url == ""


def test_allowed_networks_open_chosen_ranges_on_purpose(api, settings):
    settings.CALLBACK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    assert post_program(api, "http://127.0.0.1:9000/hook").status_code == 201
    assert post_program(api, "http://10.0.0.1/hook").status_code == 400
    assert post_program(api, "http://169.254.169.254/").status_code == 400


# --- at delivery ----------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:{port}/hook", "http://2130706433:{port}/", "http://[::ffff:127.0.0.1]:{port}/"]
)
def test_a_stored_internal_url_is_refused_at_delivery_without_a_connection(finished_job, peer, url):
    receiver = peer(answer(204))
    job = finished_job(url.format(port=receiver.port))
    assert callback_deliver(job_id=job.pk) == "pending"
    job.refresh_from_db()
    assert job.callback_error == "address not allowed"
    assert receiver.accepted == 0


def test_a_name_that_rebinds_to_loopback_after_submission_gains_nothing(api, finished_job, peer, fake_dns):
    receiver = peer(answer(204))
    lookups = fake_dns({"hooks.example.com": [["93.184.215.14"], ["127.0.0.1"]]})
    url = f"http://hooks.example.com:{receiver.port}/hook"
    assert post_program(api, url).status_code == 201  # public when checked
    job = finished_job(url)
    assert callback_deliver(job_id=job.pk) == "pending"  # loopback at delivery
    job.refresh_from_db()
    assert job.callback_error == "address not allowed" and receiver.accepted == 0
    assert lookups == ["hooks.example.com", "hooks.example.com"]


def test_the_connection_goes_to_the_address_that_was_checked(finished_job, peer, fake_dns, monkeypatch):
    """DNS answers a public address when asked, loopback if asked again:
    the delivery asks once and dials exactly what it checked."""
    receiver = peer(answer(204))
    lookups = fake_dns({"hooks.example.com": [["93.184.215.14"], ["127.0.0.1"]]})
    dialed = []

    def open_socket(ip, port, timeout):
        dialed.append(str(ip))
        raise ConnectionRefusedError("not leaving the test machine")

    monkeypatch.setattr(outbound, "open_socket", open_socket)
    job = finished_job(f"http://hooks.example.com:{receiver.port}/hook")
    assert callback_deliver(job_id=job.pk) == "pending"
    assert lookups == ["hooks.example.com"] and dialed == ["93.184.215.14"]
    assert receiver.accepted == 0


def test_a_pinned_delivery_keeps_the_original_host_header(finished_job, peer, fake_dns, dialed, settings):
    settings.CALLBACK_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    receiver = peer(answer(204))
    fake_dns({"hooks.example.com": [["127.0.0.1"], ["10.9.9.9"]]})
    job = finished_job(f"http://hooks.example.com:{receiver.port}/hook")
    assert callback_deliver(job_id=job.pk) == "delivered"
    assert dialed == ["127.0.0.1"]
    head = receiver.requests[0].split(b"\r\n\r\n")[0].lower()
    assert b"\r\nhost: hooks.example.com:%d" % receiver.port in head
    assert head.startswith(b"post /hook http/1.1")


@pytest.mark.parametrize("url", INTERNAL)
def test_the_whole_matrix_is_refused_at_delivery_without_dialing(finished_job, dialed, url):
    """The same URLs stored by other means (admin, older versions): the
    delivery checks again and never connects."""
    job = finished_job(url)
    assert callback_deliver(job_id=job.pk) == "pending"
    job.refresh_from_db()
    assert job.callback_error == "address not allowed" and dialed == []


@pytest.mark.parametrize(
    "host, address",
    [
        ("127.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0x7F000001", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("0", "0.0.0.0"),
        ("169.254.43518", "169.254.169.254"),
        ("8.8.8.8.", "8.8.8.8"),
        ("hooks.example.com", None),
        ("1a.example", None),
        ("0xzz", None),
    ],
)
def test_ipv4_spellings_are_read_as_url_parsers_and_inet_aton_read_them(host, address):
    parsed = outbound.parse_ipv4_literal(host)
    assert (str(parsed) if parsed else None) == address


@pytest.mark.parametrize("host", ["1.2.3.4.5", "256.1.1.1", "1.2.3.16777216", "08.1.1.1", "1..1"])
def test_hosts_that_end_in_a_number_but_are_no_address_are_invalid(host):
    with pytest.raises(outbound.InvalidTarget):
        outbound.parse_ipv4_literal(host)
