from django.apps import AppConfig


class JobsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "jobs"

    def ready(self) -> None:
        # Devices announce lost work and pool changes; jobs requeues and wakes
        # its workers, and tells the device pages what each device runs
        # (devices never imports jobs).
        from devices.activity import register_activity
        from devices.signals import device_work_lost, pool_changed
        from jobs.handlers import requeue_lost_work, wake_workers
        from jobs.selectors import annotate_device_activity

        device_work_lost.connect(requeue_lost_work, dispatch_uid="jobs.requeue_lost_work")
        pool_changed.connect(wake_workers, dispatch_uid="jobs.wake_workers")
        register_activity(annotate_device_activity)
