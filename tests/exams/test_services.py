"""exams.services: the one write path of the API, the admin and the simulation."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from django.core.exceptions import ValidationError

from exams import signals
from exams.exceptions import ExamIdTaken, ExamNotFound
from exams.models import Exam
from exams.services import _reset_id_sequence, exam_create, exam_delete, exam_update

pytestmark = pytest.mark.django_db

START = datetime(2030, 6, 1, 9, 0, tzinfo=timezone.utc)
END = START + timedelta(hours=2)


def test_create_stores_utc(make_exam):
    cet = timezone(timedelta(hours=2))
    exam = make_exam(start=datetime(2030, 6, 1, 11, 0, tzinfo=cet), end="2030-06-01T11:00:00Z")
    exam.refresh_from_db()
    assert exam.start == START and exam.end == END
    assert exam.start.utcoffset() == timedelta(0)


def test_naive_datetimes_and_offsetless_strings_are_utc(make_exam):
    exam = make_exam(start=datetime(2030, 6, 1, 9, 0), end="2030-06-01T11:00:00")
    exam.refresh_from_db()
    assert (exam.start, exam.end) == (START, END)


def test_validation_names_the_field_and_saves_nothing(make_exam, settings):
    settings.EXAM_MAX_STUDENTS = 100
    cases = [
        ({"end": START}, "end"),
        ({"end": START - timedelta(minutes=1)}, "end"),
        ({"students": 101}, "students"),
        ({"students": -1}, "students"),
        ({"students": "x"}, "students"),
        ({"name": ""}, "name"),
        ({"start": "tomorrow"}, "start"),
        ({"start": None}, "start"),
        ({"end": 12}, "end"),
        ({"id": 0}, "id"),
        ({"id": "7"}, "id"),
    ]
    for change, field in cases:
        with pytest.raises(ValidationError) as excinfo:
            make_exam(**{"students": 50, **change})
        assert list(excinfo.value.message_dict) == [field], change
    assert Exam.objects.count() == 0


def test_explicit_id_and_taken_id(make_exam):
    exam = make_exam(id=7)
    assert exam.pk == 7
    with pytest.raises(ExamIdTaken) as excinfo:
        make_exam(id=7, name="again")
    assert excinfo.value.field == "id"
    assert Exam.objects.get().name == "Calculus I"
    assert make_exam().pk > 7


def test_update_applies_and_validates_against_stored_values(make_exam):
    exam = make_exam()
    updated = exam_update(exam=exam, end=START + timedelta(hours=3), name="  Longer  ")
    assert (updated.end, updated.name) == (START + timedelta(hours=3), "Longer")
    with pytest.raises(ValidationError) as excinfo:
        exam_update(exam=exam, start=START + timedelta(hours=3))
    assert list(excinfo.value.message_dict) == ["end"]
    exam.refresh_from_db()
    assert exam.start == START and exam.end == START + timedelta(hours=3)


def test_update_with_unchanged_values_saves_nothing(make_exam):
    exam = make_exam()
    stamp = Exam.objects.get(pk=exam.pk).updated_at
    exam_update(exam=exam, students=exam.students, start=exam.start)
    assert Exam.objects.get(pk=exam.pk).updated_at == stamp
    exam_update(exam=exam, students=exam.students + 1)
    assert Exam.objects.get(pk=exam.pk).updated_at > stamp


def test_update_refuses_unknown_fields(make_exam):
    exam = make_exam()
    with pytest.raises(TypeError, match="updated_at"):
        exam_update(exam=exam, updated_at=START)


def test_update_or_delete_of_a_deleted_exam_is_not_found(make_exam):
    exam = make_exam()
    exam_delete(exam=exam)
    assert not Exam.objects.exists()
    with pytest.raises(ExamNotFound):
        exam_update(exam=exam, students=1)
    with pytest.raises(ExamNotFound):
        exam_delete(exam=exam)


def test_the_scheduler_hears_of_each_write_on_commit(make_exam, exam_changed, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        exam = make_exam()
        assert exam_changed == []  # not before the transaction commits
    with django_capture_on_commit_callbacks(execute=True):
        exam_update(exam=exam, students=3)
    with django_capture_on_commit_callbacks(execute=True):
        exam_delete(exam=exam)
    assert exam_changed == [exam.pk] * 3


def test_works_without_vms_signals(make_exam, no_vm_signals, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        exam = make_exam()
        exam_update(exam=exam, students=3)
        exam_delete(exam=exam)
    assert not Exam.objects.exists()


def test_a_failing_wake_up_does_not_undo_the_write(make_exam, django_capture_on_commit_callbacks, caplog):
    def broken(sender, *, exam_id, **kwargs):
        raise RuntimeError("scheduler unreachable")

    signals.exam_changed.connect(broken, dispatch_uid="tests.broken")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            exam = make_exam()
    finally:
        signals.exam_changed.disconnect(dispatch_uid="tests.broken")
    assert Exam.objects.filter(pk=exam.pk).exists()
    assert "scheduler unreachable" in caplog.text


def test_direct_exam_create_without_optional_id():
    exam = exam_create(name="N", start=START, end=END, students=0)
    assert Exam.objects.get(pk=exam.pk).students == 0


def test_after_the_largest_id_a_new_exam_takes_the_lowest_free_one(db):
    """Exam ids are 32-bit everywhere: once an exam holds 2,147,483,647 the
    database's next id would be above it, so the lowest free id is used."""
    from exams import rules

    exam_create(id=1, name="a", start=START, end=END, students=1)
    exam_create(id=2, name="b", start=START, end=END, students=1)
    top = exam_create(id=rules.ID_MAX, name="top", start=START, end=END, students=1)
    try:
        assert exam_create(name="next", start=START, end=END, students=1).pk == 3
        assert exam_create(name="then", start=START, end=END, students=1).pk == 4
        assert Exam.objects.filter(pk__gt=rules.ID_MAX).count() == 0
    finally:
        # PostgreSQL's sequence is not rolled back with the test: bring it down again.
        exam_delete(exam=top)
        _reset_id_sequence()
