"""Partial index of each user's queued jobs, for the USER_MAX_QUEUED_JOBS check."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("jobs", "0004_high_priority_permission"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="job",
            index=models.Index(condition=models.Q(("status", "queued")), fields=["owner"], name="job_owner_queued_idx"),
        ),
    ]
