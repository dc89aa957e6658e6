from django.apps import AppConfig


class VmsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "vms"

    def ready(self) -> None:
        # Every committed exam write wakes the VM scheduler (exams never imports vms).
        from exams.signals import exam_changed
        from vms.signals import on_exam_changed

        exam_changed.connect(on_exam_changed, dispatch_uid="vms.on_exam_changed")
