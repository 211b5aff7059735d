import json
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.db import transaction
from django.db.models import Count, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import escape, format_html, format_html_join
from django.utils.safestring import mark_safe

from relieve_app.contact.mailtask import job_of, send_contact_mail
from relieve_app.models import (
    MailOutcome,
    Pool,
    RelieveMaster,
    Schedule,
    TaskEvent,
    TaskRecord,
    UsageSample,
)
from relieve_app.monitor import dashboard, status
from relieve_app.monitor.large_lists import EstimatingPaginator, IndexedValuesFilter
from relieve_app.monitor.progress_bar import progress_html
from relieve_app.monitor.why import why_waiting
from relieve_app.tasks import backend, client
from relieve_app.tasks.cancel import cancel as cancel_task
from relieve_app.tasks.progress import progress as progress_of
from relieve_app.tasks.schedule import listing

# The admin index is where an admin lands: it shows the master-down banner too, unless the project
# gave its admin an index template of its own (then it can add {% relieve_master_banner %} itself).
if admin.site.index_template is None:
    admin.site.index_template = "admin/relieve_app/index.html"


def _compact(moment, seconds=False):
    """ "14:05" today, "Nov 28 14:05" this year, "Nov 28 2025 14:05" before: short enough for a list
    column beside the admin's two sidebars at 1280 px. The detail page has the full time."""
    if moment is None:
        return "-"
    local, today = timezone.localtime(moment), timezone.localtime()
    clock = f"{local:%H:%M:%S}" if seconds else f"{local:%H:%M}"
    if local.date() == today.date():
        return clock
    year = "" if local.year == today.year else f" {local.year}"
    return f"{local:%b} {local.day}{year} {clock}"


def _count(number, noun):
    """ "1 task", "2 tasks": what the admin's notes say, instead of "2 task(s)"."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _breakable(text, after):
    """``text`` that wraps only after these characters, never inside a part: an address after its "@"
    and dots (not at the hyphen of a-long-domain), a dotted path after its dots."""
    parts, start = [], 0
    for index, char in enumerate(text):
        if char in after:
            parts.append(text[start : index + 1])
            start = index + 1
    parts.append(text[start:])
    spans = (f'<span class="nowrap">{escape(part)}</span>' for part in parts if part)
    return mark_safe("<wbr>".join(spans))  # every part is escaped above


class ReadOnlyMixin:
    """Tasks, outcomes, events and samples are written by the master alone; people look at them, and retry."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class RetryMixin:
    """Runs the selected rows again as new tasks, then tells the master on commit."""

    def has_retry_permission(self, request):
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}")

    def hand_over(self, request, rows, noun):
        """Give new tasks to the master over one connection; what it does not take waits for the sweep."""
        handed = client.submit_many([(row.pk, backend.hints(row)) for row in rows])
        if handed:
            self.message_user(request, f"{_count(handed, noun)} handed to the master.", messages.SUCCESS)
        if waiting := len(rows) - handed:
            if status.master_alive():
                why = "the master refused them for now and picks them up on its next sweep."
            else:
                why = (
                    "no relieve master is running. They are sent once one starts "
                    "(python manage.py runrelieve)."
                )
            self.message_user(request, f"{_count(waiting, noun)} stay queued: {why}", messages.WARNING)


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
    # Six columns fit beside the admin's two sidebars at 1280 px; the child that sent it is on the detail.
    list_display = ["status", "sender", "short_subject", "tries", "created", "sent"]
    list_display_links = ["status", "short_subject"]
    list_filter = ["status", "created_at"]
    date_hierarchy = "created_at"
    search_fields = ["emitter", "recipient", "subject", "body", "error", "reference"]
    fields = [
        ("status", "attempts", "task_name"),
        ("created_at", "updated_at", "sent_at"),
        ("emitter", "recipient"),
        "reference",  # what a visitor quotes from their thank-you page
        "task_result_link",  # the django.tasks result that sends (or sent) it
        "subject",
        "body",
        "message",
        "error",
    ]
    readonly_fields = [name for row in fields for name in ((row,) if isinstance(row, str) else row)]
    inlines = [OutcomeEventInline]
    actions = ["retry"]

    @admin.display(description="from (visitor)", ordering="emitter")
    def sender(self, obj):
        return _breakable(obj.emitter, after="@.")

    @admin.display(description="subject", ordering="subject")
    def short_subject(self, obj):
        return obj.subject if len(obj.subject) <= 60 else obj.subject[:59] + "…"

    @admin.display(description="tries", ordering="attempts")
    def tries(self, obj):
        return obj.attempts

    # Compact times keep the list inside its box at laptop widths; the detail page has the full ones.
    @admin.display(description="created", ordering="created_at")
    def created(self, obj):
        return _compact(obj.created_at)

    @admin.display(description="sent", ordering="sent_at")
    def sent(self, obj):
        return _compact(obj.sent_at)

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
                tasks.append(row)
            transaction.on_commit(lambda: self.hand_over(request, tasks, "message"))
        if skipped:
            self.message_user(
                request, f"{_count(skipped, 'sent message')} left alone: they are not sent twice."
            )


@admin.register(Pool)
class PoolAdmin(admin.ModelAdmin):
    """The live pool page, listed in the app's section of the admin index; the host's own admin index,
    titles and templates stay the project's. Shown to whoever may view the mail outcomes."""

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("relieve_app.view_mailoutcome")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_urls(self):
        view = self.admin_site.admin_view
        page = view(lambda request: dashboard.page(request, self.admin_site))
        return [
            path("", page, name="relieve_pool"),
            path("", page, name="relieve_app_pool_changelist"),  # what the admin index links to
            path("state.json", view(dashboard.state_json), name="relieve_pool_state"),
            path("charts/", view(dashboard.charts_fragment), name="relieve_pool_charts"),
            path("queue/", view(dashboard.queue_action), name="relieve_pool_queue"),
        ]


@admin.register(TaskRecord)
class TaskRecordAdmin(RetryMixin, ReadOnlyMixin, admin.ModelAdmin):
    # Eight columns fit beside the admin's two sidebars at 1280 px: the path wraps at its dots, the
    # times are compact; the priority and the full times are on the detail.
    list_display = ["id", "task", "queue_name", "status", "attempt_count", "enqueued", "finished", "schedule"]
    # Each filter and the ordering has its index (models.py); the date filter costs no query, where
    # a date hierarchy read every row's date, and a large list's count is estimated (monitor/large_lists.py).
    list_filter = [
        "status",
        ("task_path", IndexedValuesFilter),
        ("queue_name", IndexedValuesFilter),
        ("schedule", IndexedValuesFilter),
        "enqueued_at",
    ]
    paginator = EstimatingPaginator
    show_full_result_count = False
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
        ("schedule", "schedule_slot", "cancel_requested_at"),
        ("unique_key", "concurrency", "rate"),
        "outcomes",
    ]
    readonly_fields = [
        *(name for line in fields for name in (line if isinstance(line, tuple) else [line])),
        "waiting_because",
        "progress_bar",
    ]
    inlines = [TaskResultEventInline]
    actions = ["retry", "cancel"]

    @admin.action(description="Cancel", permissions=["retry"])
    def cancel(self, request, queryset):
        """A waiting task ends FAILED now; a running one has its child stopped by its master."""
        done = sum(cancel_task(pk) for pk in queryset.values_list("pk", flat=True))
        if done:
            self.message_user(request, f"{_count(done, 'task')} cancelled.", messages.SUCCESS)
        if skipped := queryset.count() - done:
            self.message_user(request, f"{_count(skipped, 'finished task')} left alone.")

    def get_fields(self, request, obj=None):
        """A READY task says why it has not started; one that reported progress shows it as a bar."""
        extra = []
        if obj is not None and obj.status == TaskRecord.Status.READY:
            extra.append("waiting_because")
        if obj is not None and progress_of(obj.pk) is not None:
            extra.append("progress_bar")
        return [*self.fields[:2], *extra, *self.fields[2:]]

    @admin.display(description="why is it waiting?")
    def waiting_because(self, obj):
        return format_html_join(
            "", '<p class="relieve-why">{}</p>', ((reason,) for reason in why_waiting(obj))
        )

    @admin.display(description="progress")
    def progress_bar(self, obj):
        return progress_html(progress_of(obj.pk))

    @admin.display(description="tries", ordering="attempts")  # the list's word; the detail's field too
    def attempt_count(self, obj):
        return obj.attempts

    @admin.display(description="task", ordering="task_path")
    def task(self, obj):
        return _breakable(obj.task_path, after="._")

    @admin.display(description="enqueued", ordering="enqueued_at")
    def enqueued(self, obj):
        return _compact(obj.enqueued_at)

    @admin.display(description="finished", ordering="finished_at")
    def finished(self, obj):
        return _compact(obj.finished_at)

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
            self.message_user(request, f"{_count(skipped, 'task')} not failed left alone.")
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
    list_display = ["time", "event", "task_name", "task", "outcome"]
    list_filter = ["event", "task_name"]
    list_select_related = ["outcome", "task_result"]
    date_hierarchy = "created_at"
    search_fields = ["task_name", "payload"]
    fields = ["created_at", "event", "task_name", "task_result", "outcome", "payload"]
    readonly_fields = fields

    @admin.display(description="time", ordering="created_at")
    def time(self, obj):
        return _compact(obj.created_at, seconds=True)

    @admin.display(description="task result", ordering="task_result")
    def task(self, obj):
        row = obj.task_result
        return "-" if row is None else _breakable(f"#{row.pk} {row.task_path} ({row.status})", after="._ ")


@admin.register(UsageSample)
class UsageSampleAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["time", "task_name", "pid", "memory_mib", "cpu_percent"]
    list_filter = ["task_name"]
    date_hierarchy = "created_at"
    ordering = ["-created_at", "-id"]  # the latest sample is the one asked about

    @admin.display(description="time", ordering="created_at")
    def time(self, obj):
        return _compact(obj.created_at, seconds=True)

    @admin.display(description="resident memory", ordering="memory")
    def memory_mib(self, obj):
        return f"{obj.memory / 2**20:.1f} MiB"


def _pretty(value):
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True))


@admin.register(RelieveMaster)
class RelieveMasterAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """The masters sharing this database; a gone one vanished without stopping, with the rows it held."""

    list_display = ["host_name", "pid", "state", "held", "started", "heartbeat", "children", "queue_sizes"]
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

    @admin.display(description="host", ordering="host")
    def host_name(self, obj):
        return _breakable(obj.host, after=".-")

    @admin.display(description="started", ordering="started_at")
    def started(self, obj):
        return _compact(obj.started_at)

    @admin.display(description="queues")
    def queue_sizes(self, obj):
        """ "mail, default": words that wrap, not a JSON list that runs off the column."""
        return ", ".join(str(name) for name in obj.queues or ()) or "-"

    @admin.display(description="last heartbeat", ordering="heartbeat_at")
    def heartbeat(self, obj):
        return _compact(obj.heartbeat_at, seconds=True)

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


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin):
    """The entries of RELIEVE_SCHEDULE: the setting defines them, the admin switches them on and off."""

    list_display = ["name", "rule", "zone", "is_enabled", "next_run", "last_run", "last_result"]
    actions = ["enable", "disable"]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(name__in=list(listing.load()))

    def changelist_view(self, request, extra_context=None):
        listing.ensure_rows()
        self._rows = {row["name"]: row for row in listing.rows()}
        return super().changelist_view(request, extra_context)

    def _row(self, obj):
        rows = getattr(self, "_rows", None) or {row["name"]: row for row in listing.rows()}
        return rows.get(obj.name, {})

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request)  # the actions, not a form

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="rule")
    def rule(self, obj):
        return self._row(obj).get("rule", "-")

    @admin.display(description="time zone")
    def zone(self, obj):
        return self._row(obj).get("timezone", "-")

    @admin.display(description="enabled", boolean=True)
    def is_enabled(self, obj):
        return self._row(obj).get("enabled")

    @admin.display(description="next run")
    def next_run(self, obj):
        moment = self._row(obj).get("next_run")
        return _compact(timezone.datetime.fromisoformat(moment)) if moment else "-"

    @admin.display(description="last run")
    def last_run(self, obj):
        moment = self._row(obj).get("last_run")
        return _compact(timezone.datetime.fromisoformat(moment)) if moment else "-"

    @admin.display(description="last result")
    def last_result(self, obj):
        row = self._row(obj)
        if row.get("last_result") is None:
            return "-"
        url = reverse("admin:relieve_app_taskrecord_change", args=[row["last_result"]])
        runs = f"{reverse('admin:relieve_app_taskrecord_changelist')}?{urlencode({'schedule': obj.name})}"
        return format_html(
            '<a href="{}">#{} {}</a> (<a href="{}">all runs</a>)',
            url,
            row["last_result"],
            row["last_status"],
            runs,
        )

    @admin.action(description="Enable selected schedules", permissions=["change"])
    def enable(self, request, queryset):
        listing.switch(list(queryset.values_list("name", flat=True)), True)
        self.message_user(request, f"{_count(queryset.count(), 'schedule')} enabled.", messages.SUCCESS)

    @admin.action(description="Disable selected schedules", permissions=["change"])
    def disable(self, request, queryset):
        listing.switch(list(queryset.values_list("name", flat=True)), False)
        self.message_user(request, f"{_count(queryset.count(), 'schedule')} disabled.", messages.SUCCESS)
