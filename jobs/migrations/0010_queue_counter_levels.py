"""Queue counters at four levels of id blocks (was: blocks of 1,024 ids only).

Why: with one level, a position summed every counter of the higher
priorities and every earlier block of its own: at a million queued jobs
over ten priorities, ~7,000 rows and ~3 ms of PostgreSQL time per
``GET /jobs/<id>`` (``EXPLAIN ANALYZE`` in docs/benchmarks.md). Now a
position reads the priorities' totals (level 3), then at each lower level
only the blocks before the job's inside its enclosing block: at most
31 + 31 + (ids / 2**20) + priorities rows per slot, whatever the depth.

Level i counts blocks of 2**SHIFTS[i] ids: 1,024, 32,768, 1,048,576, and
2**62 (one block: the priority's total). ``jobs.models.QUEUE_LEVEL_SHIFTS``
must say the same.

The rest is migration 0009's design, unchanged: statement-level triggers
with transition tables, deltas upserted in key order (now with the level
in the key: (device_type, level, priority, bucket)), so two statements lock
counters in the same order and cannot deadlock; the slot (backend pid % 8)
spreads concurrent claimers over different rows; TRUNCATE empties the
counters; the backfill runs after the triggers exist, under a lock that
keeps writers of jobs_job out until the migration commits.
"""

from django.db import migrations, models

LEVELS = "(VALUES (0, 10), (1, 15), (2, 20), (3, 62)) AS l(level, shift)"

LOCK = "LOCK TABLE jobs_job IN SHARE ROW EXCLUSIVE MODE;"

FORWARD = f"""
CREATE OR REPLACE FUNCTION jobs_queue_counters_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Each branch: +1 per queued row after the statement, -1 per queued row
    -- before it, summed per counter of every level; zero sums (a queued row
    -- edited, a running row finished) write nothing.
    IF TG_OP = 'INSERT' THEN
        INSERT INTO jobs_queuecounter AS c (device_type, level, priority, bucket, slot, n)
        SELECT r.device_type, l.level, r.priority, r.id >> l.shift, pg_backend_pid() % 8, count(*)
          FROM new_rows r CROSS JOIN {LEVELS}
         WHERE r.status = 'queued'
         GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
        ON CONFLICT (device_type, level, priority, bucket, slot) DO UPDATE SET n = c.n + EXCLUDED.n;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO jobs_queuecounter AS c (device_type, level, priority, bucket, slot, n)
        SELECT r.device_type, l.level, r.priority, r.id >> l.shift, pg_backend_pid() % 8, -count(*)
          FROM old_rows r CROSS JOIN {LEVELS}
         WHERE r.status = 'queued'
         GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4
        ON CONFLICT (device_type, level, priority, bucket, slot) DO UPDATE SET n = c.n + EXCLUDED.n;
    ELSIF EXISTS (SELECT 1 FROM old_rows WHERE status = 'queued')
          OR EXISTS (SELECT 1 FROM new_rows WHERE status = 'queued') THEN
        -- (Half of the queue's updates never touch a queued row: a result
        -- stored, a lease renewed. They stop at the two EXISTS above.)
        INSERT INTO jobs_queuecounter AS c (device_type, level, priority, bucket, slot, n)
        SELECT t.device_type, l.level, t.priority, t.id >> l.shift, pg_backend_pid() % 8, sum(t.d)
          FROM (SELECT device_type, priority, id, 1 AS d FROM new_rows WHERE status = 'queued'
                UNION ALL
                SELECT device_type, priority, id, -1 FROM old_rows WHERE status = 'queued') t
         CROSS JOIN {LEVELS}
         GROUP BY 1, 2, 3, 4 HAVING sum(t.d) <> 0 ORDER BY 1, 2, 3, 4
        ON CONFLICT (device_type, level, priority, bucket, slot) DO UPDATE SET n = c.n + EXCLUDED.n;
    END IF;
    RETURN NULL;
END $$;

DELETE FROM jobs_queuecounter;
INSERT INTO jobs_queuecounter (device_type, level, priority, bucket, slot, n)
SELECT j.device_type, l.level, j.priority, j.id >> l.shift, 0, count(*)
  FROM jobs_job j CROSS JOIN {LEVELS}
 WHERE j.status = 'queued'
 GROUP BY 1, 2, 3, 4;
"""

# Back to 0009's function (one level). Reversed, the operations run last to
# first: this function first, then the table goes back to 0009's shape, and
# the first operation refills it (REFILL_0009).
REVERSE = """
CREATE OR REPLACE FUNCTION jobs_queue_counters_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO jobs_queuecounter AS c (device_type, priority, bucket, slot, n)
        SELECT device_type, priority, id >> 10, pg_backend_pid() % 8, count(*) FROM new_rows WHERE status = 'queued'
         GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (device_type, priority, bucket, slot) DO UPDATE SET n = c.n + EXCLUDED.n;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO jobs_queuecounter AS c (device_type, priority, bucket, slot, n)
        SELECT device_type, priority, id >> 10, pg_backend_pid() % 8, -count(*) FROM old_rows WHERE status = 'queued'
         GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (device_type, priority, bucket, slot) DO UPDATE SET n = c.n + EXCLUDED.n;
    ELSIF EXISTS (SELECT 1 FROM old_rows WHERE status = 'queued')
          OR EXISTS (SELECT 1 FROM new_rows WHERE status = 'queued') THEN
        INSERT INTO jobs_queuecounter AS c (device_type, priority, bucket, slot, n)
        SELECT device_type, priority, bucket, pg_backend_pid() % 8, sum(d) FROM (
                SELECT device_type, priority, id >> 10 AS bucket, 1 AS d FROM new_rows WHERE status = 'queued'
                UNION ALL
                SELECT device_type, priority, id >> 10, -1 FROM old_rows WHERE status = 'queued') t
         GROUP BY 1, 2, 3 HAVING sum(d) <> 0 ORDER BY 1, 2, 3
        ON CONFLICT (device_type, priority, bucket, slot) DO UPDATE SET n = c.n + EXCLUDED.n;
    END IF;
    RETURN NULL;
END $$;
"""

REFILL_0009 = """
DELETE FROM jobs_queuecounter;
INSERT INTO jobs_queuecounter (device_type, priority, bucket, slot, n)
SELECT device_type, priority, id >> 10, 0, count(*) FROM jobs_job WHERE status = 'queued' GROUP BY 1, 2, 3;
"""


def _on_postgresql(*statements: str):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            for sql in statements:
                schema_editor.execute(sql, params=None)  # no %-formatting of the SQL

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0009_queue_counters"),
    ]

    operations = [
        # Writers of jobs_job wait from here to the commit: no change is lost
        # or counted twice while the counters are made anew.
        migrations.RunPython(_on_postgresql(LOCK), _on_postgresql(LOCK, REFILL_0009)),
        # The key changes shape (a level in it): the table is made anew and
        # refilled by the backfill below. The triggers only name the table.
        migrations.DeleteModel(name="QueueCounter"),
        migrations.CreateModel(
            name="QueueCounter",
            fields=[
                (
                    "pk",
                    models.CompositePrimaryKey(
                        "device_type",
                        "level",
                        "priority",
                        "bucket",
                        "slot",
                        blank=True,
                        editable=False,
                        primary_key=True,
                        serialize=False,
                    ),
                ),
                ("device_type", models.CharField(max_length=100)),
                ("level", models.SmallIntegerField(help_text="index into QUEUE_LEVEL_SHIFTS")),
                ("priority", models.IntegerField()),
                ("bucket", models.BigIntegerField(help_text="job id >> QUEUE_LEVEL_SHIFTS[level]")),
                ("slot", models.SmallIntegerField(default=0, help_text="the writer's backend pid % 8")),
                ("n", models.BigIntegerField(default=0)),
            ],
        ),
        migrations.RunPython(_on_postgresql(FORWARD), _on_postgresql(LOCK, REVERSE)),
    ]
