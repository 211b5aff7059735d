from django.contrib import admin, messages
from django.db import transaction
from django.utils import timezone

from relieve_app import client, wakeup
from relieve_app.models import MailOutcome, RelieveMaster, TaskEvent


class ReadOnlyMixin:
    """Outcomes and events are written by the master alone; people look at them, and retry."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class TaskEventInline(ReadOnlyMixin, admin.TabularInline):
    model = TaskEvent
    fields = ["created_at", "event", "task_name", "payload"]
    readonly_fields = fields
    ordering = ["created_at", "id"]
    extra = 0
    can_delete = False
    show_change_link = True


@admin.register(MailOutcome)
class MailOutcomeAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = [
        "status",
        "recipient",
        "emitter",
        "subject",
        "attempts",
        "task_name",
        "created_at",
        "sent_at",
    ]
    list_filter = ["status", "created_at"]
    date_hierarchy = "created_at"
    search_fields = ["emitter", "recipient", "subject", "body", "error"]
    inlines = [TaskEventInline]
    actions = ["retry"]

    def has_retry_permission(self, request):
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}")

    @admin.action(description="Retry selected messages", permissions=["retry"])
    def retry(self, request, queryset):
        skipped = queryset.filter(status=MailOutcome.Status.SENT).count()
        with transaction.atomic():
            ids = list(queryset.exclude(status=MailOutcome.Status.SENT).values_list("pk", flat=True))
            MailOutcome.objects.filter(pk__in=ids).update(
                status=MailOutcome.Status.QUEUED, attempts=0, error="", updated_at=timezone.now()
            )
            for pk in ids:
                wakeup.notify("mail", pk)
            transaction.on_commit(lambda: self.hand_over(request, ids))
        if skipped:
            self.message_user(request, f"{skipped} sent message(s) left alone: they are not sent twice.")

    def hand_over(self, request, ids):
        """Give reset rows to the master; after its first refusal the rest simply wait for the sweep."""
        handed = 0
        for pk in ids:
            if not client.submit(pk):
                break
            handed += 1
        if handed:
            self.message_user(request, f"{handed} message(s) handed to the master.", messages.SUCCESS)
        if waiting := len(ids) - handed:
            self.message_user(
                request,
                f"{waiting} message(s) stay queued: the master will pick them up on its next sweep.",
                messages.WARNING,
            )


@admin.register(TaskEvent)
class TaskEventAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["created_at", "event", "task_name", "outcome"]
    list_filter = ["event", "task_name"]
    list_select_related = ["outcome"]
    date_hierarchy = "created_at"
    search_fields = ["task_name", "payload"]


@admin.register(RelieveMaster)
class RelieveMasterAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """The masters sharing this database; a gone one vanished without stopping."""

    list_display = ["host", "pid", "state", "started_at", "heartbeat_at", "expires_at", "children", "queues"]
    list_filter = ["host"]
    search_fields = ["id", "host"]
    fields = ["id", "host", "pid", "state", "started_at", "heartbeat_at", "expires_at", "children", "queues"]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).with_gone()

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="state", boolean=False, ordering="expires_at")
    def state(self, obj):
        return "gone" if obj.gone else "running"
