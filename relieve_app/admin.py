from django.contrib import admin, messages
from django.db import transaction
from django.urls import path
from django.utils import timezone

from relieve_app import client, dashboard, status
from relieve_app.models import MailOutcome, TaskEvent, UsageSample

admin.site.site_header = "relieve administration"
admin.site.site_title = "relieve"
admin.site.index_title = "Contact mail and its pool"
admin.site.index_template = "admin/relieve_app/site_index.html"  # adds the "Relieve pool" link


def _compact(moment):
    """ "Nov 28 14:05" this year, "Nov 28 2025 14:05" before: short enough for a list column."""
    if moment is None:
        return "-"
    local = timezone.localtime(moment)
    year = "" if local.year == timezone.localtime().year else f" {local.year}"
    return f"{local:%b} {local.day}{year} {local:%H:%M}"


class ReadOnlyMixin:
    """Outcomes, events and samples are written by the master alone; people look at them, and retry."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
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
    # Six columns fit beside the admin's two sidebars at 1280 px; the child that sent it is on the detail.
    list_display = ["status", "emitter", "short_subject", "tries", "created", "sent"]
    list_display_links = ["status", "short_subject"]
    list_filter = ["status", "created_at"]
    date_hierarchy = "created_at"
    search_fields = ["emitter", "recipient", "subject", "body", "error", "reference"]
    fields = [
        ("status", "attempts", "task_name"),
        ("created_at", "updated_at", "sent_at"),
        ("emitter", "recipient"),
        "reference",  # what a visitor quotes from their thank-you page
        "subject",
        "body",
        "message",
        "error",
    ]
    readonly_fields = [name for row in fields for name in ((row,) if isinstance(row, str) else row)]
    inlines = [TaskEventInline]
    actions = ["retry"]

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

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path(
                "pool/", view(lambda request: dashboard.page(request, self.admin_site)), name="relieve_pool"
            ),
            path("pool/state.json", view(dashboard.state_json), name="relieve_pool_state"),
            path("pool/charts/", view(dashboard.charts_fragment), name="relieve_pool_charts"),
            *super().get_urls(),
        ]

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
            transaction.on_commit(lambda: self.hand_over(request, ids))
        if skipped:
            self.message_user(request, f"{skipped} sent message(s) left alone: they are not sent twice.")

    def hand_over(self, request, ids):
        """Give reset rows to the master; after its first refusal the rest wait in the database."""
        handed = 0
        for pk in ids:
            if not client.submit(pk):
                break
            handed += 1
        if handed:
            self.message_user(request, f"{handed} message(s) handed to the master.", messages.SUCCESS)
        if waiting := len(ids) - handed:
            if status.master_alive():
                why = "the master refused them for now and picks them up on its next sweep."
            else:
                why = (
                    "no relieve master is running. They are sent once one starts "
                    "(python manage.py runrelieve)."
                )
            self.message_user(request, f"{waiting} message(s) stay queued: {why}", messages.WARNING)


@admin.register(TaskEvent)
class TaskEventAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["created_at", "event", "task_name", "outcome"]
    list_filter = ["event", "task_name"]
    list_select_related = ["outcome"]
    date_hierarchy = "created_at"
    search_fields = ["task_name", "payload"]
    fields = ["created_at", "event", "task_name", "outcome", "payload"]
    readonly_fields = fields


@admin.register(UsageSample)
class UsageSampleAdmin(ReadOnlyMixin, admin.ModelAdmin):
    list_display = ["created_at", "task_name", "pid", "memory", "cpu_percent"]
    list_filter = ["task_name"]
    date_hierarchy = "created_at"
