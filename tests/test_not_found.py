import pytest


@pytest.mark.django_db
def test_unknown_api_path_is_a_json_404_with_a_trailing_slash_hint(api):
    r = api.get("/jobs/")
    assert r.status_code == 404
    assert r.json()["detail"] == "Not found: /jobs/ (API paths have no trailing slash: try /jobs)"
    r = api.get("/nothing-here")
    assert r.status_code == 404 and r.json() == {"detail": "Not found: /nothing-here"}
