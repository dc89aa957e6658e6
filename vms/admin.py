"""Admin for the VM scheduler's records, and the VM columns of the exam admin.

The exam admin belongs to the exams app; the VM columns, the shortfall
warning and the timeline chart come from ``vms.admin_exam``. If the
registered exam admin does not include them yet, they are mixed into it here
(the exams app is loaded first), keeping its own behaviour (saves through
``exams.services``).
"""

from __future__ import annotations

from django.contrib import admin
from django.utils import timezone
from django.utils.html import format_html

from exams.models import Exam
from vms.admin_exam import ExamVmPlanAdminMixin, fmt_utc, fmt_utc_html
from vms.models import VM, ProviderCall, VMState
from vms.serializers import effective_state


class EffectiveStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return VMState.choices

    def queryset(self, request, queryset):
        from vms.selectors import vm_list

        if self.value() in VMState.values:
            return queryset & vm_list(now=timezone.now(), state=self.value())
        return queryset


@admin.register(VM)
class VMAdmin(admin.ModelAdmin):
    list_display = ["id", "uuid", "exam_link", "state_now", "requested_utc", "ready_utc", "used_utc", "stopped_utc"]
    list_filter = [EffectiveStateFilter, "requested_at"]
    search_fields = ["uuid", "=exam_ref"]
    ordering = ["-requested_at", "-id"]
    list_select_related = ["exam"]
    readonly_fields = [f.name for f in VM._meta.fields]

    def has_add_permission(self, request):
        return False  # VMs exist because the scheduler asked the provider for them

    def has_change_permission(self, request, obj=None):
        return False  # the scheduler's record: shown, never edited (no Save button)

    def has_delete_permission(self, request, obj=None):
        return False  # the record is what prevents leaks after a crash

    @admin.display(description="exam", ordering="exam_ref")
    def exam_link(self, vm: VM):
        exam = vm.exam
        if exam is None:
            return f"#{vm.exam_ref} (deleted)" if vm.exam_ref else "-"
        return format_html(
            '<a href="../../exams/exam/{}/change/" title="{}">#{} {}</a>', exam.id, exam, exam.id, exam.name
        )

    @admin.display(description="state", ordering="state")
    def state_now(self, vm: VM):
        state = effective_state(vm, timezone.now())
        if state == VMState.LOST:
            return format_html('<strong style="color:#ba2121">{}</strong>', "lost (start outcome unknown)")
        return state

    # Times in UTC with seconds (the default shows minutes in the site's zone).
    @admin.display(description="requested (UTC)", ordering="requested_at")
    def requested_utc(self, vm: VM):
        return fmt_utc_html(vm.requested_at) if vm.requested_at else "-"

    @admin.display(description="ready (UTC)", ordering="ready_at")
    def ready_utc(self, vm: VM):
        return fmt_utc_html(vm.ready_at) if vm.ready_at else "-"

    @admin.display(description="used (UTC)", ordering="used_at")
    def used_utc(self, vm: VM):
        return fmt_utc_html(vm.used_at) if vm.used_at else "-"

    @admin.display(description="stopped (UTC)", ordering="stopped_at")
    def stopped_utc(self, vm: VM):
        return fmt_utc_html(vm.stopped_at) if vm.stopped_at else "-"


@admin.register(ProviderCall)
class ProviderCallAdmin(admin.ModelAdmin):
    list_display = ["t_ms", "endpoint", "vm_uuid", "exam_ref", "outcome", "error"]
    list_filter = ["endpoint", "outcome"]
    search_fields = ["vm_uuid", "=exam_ref"]
    ordering = ["-t", "-id"]
    readonly_fields = [f.name for f in ProviderCall._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="t (UTC)", ordering="t")
    def t_ms(self, call: ProviderCall):
        # UTC with milliseconds: the rate limit counts calls per rolling second.
        return fmt_utc(call.t).replace("Z", f".{call.t.microsecond // 1000:03d}Z")


def _with_vm_columns() -> None:
    current = admin.site._registry.get(Exam)
    if current is None or isinstance(current, ExamVmPlanAdminMixin):
        return
    combined = type(
        type(current).__name__, (ExamVmPlanAdminMixin, type(current)), {"__module__": type(current).__module__}
    )
    admin.site.unregister(Exam)
    admin.site.register(Exam, combined)


_with_vm_columns()
