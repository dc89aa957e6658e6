"""Queue counters (``jobs.QueueCounter``) and, on PostgreSQL, the triggers
that keep them exact.

Why triggers: a job enters or leaves status 'queued' through many statements
(submission, bulk submission, claim, finish-and-claim, failed attempt,
release, requeues of a device or of expired leases, cancels, the operators'
retry, admin edits, deletes cascading from a program or a user). A trigger
sees every one of them, in the same transaction, without any of those
statements changing; a counter forgotten by one code path would drift.

Why statement-level with transition tables: a 10,000-job submission or a
requeue of a device's jobs updates each touched counter once (grouped),
not once per row. Each statement upserts its deltas in (device_type,
priority, bucket) order, so two statements touching the same counters lock
them in the same order and cannot deadlock each other.

Why a slot (the writing backend's pid modulo 8) in the key: every claim of a
device type takes the head of its queue, so concurrent claimers would all
update the same counter row and, since a row lock is held until commit
(WAL flush included), their commits would run one at a time. Spread over
eight rows per bucket they rarely meet; a counter is the sum of its slots
(a slot alone may be negative: claims in one, submissions in another).

A statement that
leaves the queued set unchanged (a result stored on a running job) computes
an empty delta and writes nothing.

TRUNCATE fires no row or statement trigger of the other kinds, so its own
trigger empties the counters too (Django's test flush truncates tables).

The backfill runs after the triggers exist, under a lock that keeps writers
out of jobs_job until the migration commits: no change can be counted twice
or missed.
"""

from django.db import migrations, models

FORWARD = """
LOCK TABLE jobs_job IN SHARE ROW EXCLUSIVE MODE;

CREATE FUNCTION jobs_queue_counters_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Each branch: +1 per queued row after the statement, -1 per queued row
    -- before it, summed per counter; zero sums (a queued row edited, a
    -- running row finished) write nothing.
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
        -- (Half of the queue's updates never touch a queued row: a result
        -- stored, a lease renewed. They stop at the two EXISTS above.)
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

CREATE FUNCTION jobs_queue_counters_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM jobs_queuecounter;
    RETURN NULL;
END $$;

-- Transition tables need one trigger per event.
CREATE TRIGGER jobs_queue_counters_ins AFTER INSERT ON jobs_job REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION jobs_queue_counters_apply();
CREATE TRIGGER jobs_queue_counters_upd AFTER UPDATE ON jobs_job
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION jobs_queue_counters_apply();
CREATE TRIGGER jobs_queue_counters_del AFTER DELETE ON jobs_job REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION jobs_queue_counters_apply();
CREATE TRIGGER jobs_queue_counters_trunc AFTER TRUNCATE ON jobs_job
    FOR EACH STATEMENT EXECUTE FUNCTION jobs_queue_counters_truncate();

DELETE FROM jobs_queuecounter;
INSERT INTO jobs_queuecounter (device_type, priority, bucket, slot, n)
SELECT device_type, priority, id >> 10, 0, count(*) FROM jobs_job WHERE status = 'queued' GROUP BY 1, 2, 3;
"""

REVERSE = """
DROP TRIGGER IF EXISTS jobs_queue_counters_ins ON jobs_job;
DROP TRIGGER IF EXISTS jobs_queue_counters_upd ON jobs_job;
DROP TRIGGER IF EXISTS jobs_queue_counters_del ON jobs_job;
DROP TRIGGER IF EXISTS jobs_queue_counters_trunc ON jobs_job;
DROP FUNCTION IF EXISTS jobs_queue_counters_apply();
DROP FUNCTION IF EXISTS jobs_queue_counters_truncate();
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)  # no %-formatting of the SQL


def reverse(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(REVERSE, params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0008_job_last_failed_device"),
    ]

    operations = [
        migrations.CreateModel(
            name="QueueCounter",
            fields=[
                (
                    "pk",
                    models.CompositePrimaryKey(
                        "device_type",
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
                ("priority", models.IntegerField()),
                ("bucket", models.BigIntegerField(help_text="job id >> QUEUE_BUCKET_SHIFT")),
                ("slot", models.SmallIntegerField(default=0, help_text="the writer's backend pid % 8")),
                ("n", models.BigIntegerField(default=0)),
            ],
        ),
        migrations.RunPython(forward, reverse),
    ]
