"""Exams are dated within the years 2000 to 2100 (UTC): exams.models.EXAM_YEARS."""

import datetime
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('exams', '0001_initial'),
    ]

    operations = [
        migrations.AddConstraint(
            model_name='exam',
            constraint=models.CheckConstraint(condition=models.Q(('end__lt', datetime.datetime(2101, 1, 1, 0, 0, tzinfo=datetime.timezone.utc)), ('start__gte', datetime.datetime(2000, 1, 1, 0, 0, tzinfo=datetime.timezone.utc))), name='exam_dates_in_window'),
        ),
    ]
