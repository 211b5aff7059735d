import json
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.db import transaction
from django.db.models import Count, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from relieve_app import backend, wakeup
from relieve_app.mailtask import job_of, send_contact_mail
from relieve_app.models import MailOutcome, RelieveMaster, TaskEvent, TaskRecord


class ReadOnlyMixin:
    """Tasks, outcomes and events are written by the master alone; people look at them, and retry."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class RetryMixin:
    """Runs the selected rows again as new tasks, then tells the master on commit."""

    def has_retry_permission(self, request):
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}")

    def hand_over(self, request, rows, noun):
        """Give new tasks to the master; after its first refusal the rest simply wait for the sweep."""
        handed = 0
        for row in rows:
            if not backend.announce(row):
                break
            handed += 1
        if handed:
            self.message_user(request, f"{handed} {noun}(s) handed to the master.", messages.SUCCESS)
        if waiting := len(rows) - handed:
            self.message_user(
                request,
                f"{waiting} {noun}(s) stay queued: the master will pick them up on its next sweep.",
                messages.WARNING,
            )


class TaskEventInline(ReadOnlyMixin, admin.TabularInline):
    model = TaskEvent
    fields = ["created_at", "event", "task_name", "payload"]
    readonly_fields = fields
    ordering = ["created_at", "id"]
    extra = 0
    can_delete = False
    show_change_link = True


class OutcomeEventInline(TaskEventInline):
    fk_name = "outcome"


class TaskResultEventInline(TaskEventInline):
    fk_name = "task_result"


@admin.register(MailOutcome)
class MailOutcomeAdmin(RetryMixin, ReadOnlyMixin, admin.ModelAdmin):
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
    readonly_fields = ["task_result_link"]
    inlines = [OutcomeEventInline]
    actions = ["retry"]

    @admin.display(description="task result")
    def task_result_link(self, obj):
        if obj.task_result_id is None:
            return "-"
        url = reverse("admin:relieve_app_taskrecord_change", args=[obj.task_result_id])
        return format_html('<a href="{}">#{} {}</a>', url, obj.task_result_id, obj.task_result.status)

    @admin.action(description="Retry selected messages", permissions=["retry"])
    def retry(self, request, queryset):
        """Each unsent message gets a new mail task; its delivery state starts again at queued."""
        skipped = queryset.filter(status=MailOutcome.Status.SENT).count()
        with transaction.atomic():
            tasks = []
            for outcome in queryset.exclude(status=MailOutcome.Status.SENT).select_for_update():
                row = TaskRecord.objects.create(
                    task_path=send_contact_mail.module_path,
                    queue_name=send_contact_mail.queue_name,
                    backend=send_contact_mail.backend,
                    args=[job_of(outcome)],
                )
                outcome.status, outcome.attempts, outcome.error, outcome.task_result = "queued", 0, "", row
                outcome.save(update_fields=["status", "attempts", "error", "task_result", "updated_at"])
                wakeup.notify(row.queue_name, row.pk)
                tasks.append(row)
            transaction.on_commit(lambda: self.hand_over(request, tasks, "message"))
        if skipped:
            self.message_user(request, f"{skipped} sent message(s) left alone: they are not sent twice.")


@admin.register(TaskRecord)
class TaskRecordAdmin(RetryMixin, ReadOnlyMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "task_path",
        "queue_name",
        "status",
        "priority",
        "attempt_count",
        "enqueued_at",
        "finished_at",
    ]
    list_filter = ["status", "task_path", "queue_name"]
    date_hierarchy = "enqueued_at"
    search_fields = ["task_path", "args", "kwargs", "errors", "worker_ids"]
    fields = [
        ("task_path", "queue_name", "backend"),
        ("status", "priority", "attempt_count"),
        ("enqueued_at", "run_after", "started_at", "last_attempted_at", "finished_at"),
        "arguments",
        "result",
        "error_list",
        ("worker_ids", "owner", "lease_until"),
        ("timeout", "max_attempts", "takes_context"),
        "outcomes",
    ]
    readonly_fields = [*(name for line in fields for name in (line if isinstance(line, tuple) else [line]))]
    inlines = [TaskResultEventInline]
    actions = ["retry"]

    @admin.display(description="attempts")
    def attempt_count(self, obj):
        return obj.attempts

    @admin.display(description="arguments")
    def arguments(self, obj):
        return _pretty({"args": obj.args, "kwargs": obj.kwargs})

    @admin.display(description="return value")
    def result(self, obj):
        return _pretty(obj.return_value) if obj.status == TaskRecord.Status.SUCCESSFUL else "-"

    @admin.display(description="errors")
    def error_list(self, obj):
        if not obj.errors:
            return "-"
        return format_html_join(
            "",
            "<p><strong>{}</strong>: {}</p><pre>{}</pre>",
            (
                (e.get("exception_class_path", ""), e.get("message", ""), e.get("traceback", ""))
                for e in obj.errors
            ),
        )

    @admin.display(description="mail outcomes")
    def outcomes(self, obj):
        rows = obj.mail_outcomes.all()
        if not rows:
            return "-"
        return format_html_join(
            ", ",
            '<a href="{}">#{} {}</a>',
            ((reverse("admin:relieve_app_mailoutcome_change", args=[o.pk]), o.pk, o.status) for o in rows),
        )

    @admin.action(description="Run selected failed tasks again", permissions=["retry"])
    def retry(self, request, queryset):
        """Only FAILED tasks: one still waiting or running would run twice, a successful one again."""
        failed = queryset.filter(status=TaskRecord.Status.FAILED)
        if skipped := queryset.count() - failed.count():
            self.message_user(request, f"{skipped} task(s) not failed left alone.")
        with transaction.atomic():
            tasks = []
            for row in failed:
                new = backend.again(row)
                MailOutcome.objects.filter(task_result=row).update(
                    status=MailOutcome.Status.QUEUED, attempts=0, error="", task_result=new
                )
                tasks.append(new)
            transaction.on_commit(lambda: self.hand_over(request, tasks, "task"))


@admin.register(TaskEvent)
class TaskEventAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["created_at", "event", "task_name", "task_result", "outcome"]
    list_filter = ["event", "task_name"]
    list_select_related = ["outcome", "task_result"]
    date_hierarchy = "created_at"
    search_fields = ["task_name", "payload"]


def _pretty(value):
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True))


@admin.register(RelieveMaster)
class RelieveMasterAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """The masters sharing this database; a gone one vanished without stopping, with the rows it held."""

    list_display = [
        "host",
        "pid",
        "state",
        "held",
        "started_at",
        "heartbeat_at",
        "expires_at",
        "children",
        "queues",
    ]
    list_filter = ["host"]
    search_fields = ["id", "host"]
    fields = [
        "id",
        "host",
        "pid",
        "state",
        "held",
        "started_at",
        "heartbeat_at",
        "expires_at",
        "children",
        "queues",
    ]
    readonly_fields = fields

    def get_queryset(self, request):
        running = TaskRecord.objects.filter(owner=OuterRef("pk"), status=TaskRecord.Status.RUNNING)
        held = Subquery(running.values("owner").annotate(n=Count("pk")).values("n"))
        return super().get_queryset(request).with_gone().annotate(held_count=Coalesce(held, 0))

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="state", ordering="expires_at")
    def state(self, obj):
        return "gone" if obj.gone else "running"

    @admin.display(description="tasks held", ordering="held_count")
    def held(self, obj):
        """Links to the task results this master runs; a gone master's wait to be taken over."""
        query = urlencode({"owner": obj.pk, "status": TaskRecord.Status.RUNNING})
        url = f"{reverse('admin:relieve_app_taskrecord_changelist')}?{query}"
        return format_html('<a href="{}">{}</a>', url, obj.held_count)
