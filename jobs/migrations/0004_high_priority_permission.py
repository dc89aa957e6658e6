"""The jobs.high_priority permission: lifts USER_MAX_PRIORITY (jobs.limits)."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("jobs", "0003_webhook_secret_requeues"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="program",
            options={
                "ordering": ["-id"],
                "permissions": [("high_priority", "Can submit programs above USER_MAX_PRIORITY")],
            },
        ),
    ]
