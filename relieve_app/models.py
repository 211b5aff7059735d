"""What happened to each contact message, and the event log of the tasks that handled it."""

from django.db import models
from django.utils import timezone

from relieve_app import references


class MailOutcomeQuerySet(models.QuerySet):
    def pending(self):
        """Rows the master still owes a delivery: the sweep picks these up after any crash."""
        return self.filter(status__in=MailOutcome.PENDING)


class MailOutcome(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        RETRYING = "retrying", "Retrying"
        FAILED = "failed", "Failed"

    PENDING = (Status.QUEUED, Status.SENDING, Status.RETRYING)

    # What the visitor's thank-you page and the status endpoint are found by; never the sequential id.
    reference = models.CharField(
        "reference", max_length=64, unique=True, default=references.new, editable=False
    )
    emitter = models.EmailField("from (visitor)")
    recipient = models.EmailField("to")
    subject = models.CharField("subject", max_length=200)
    body = models.TextField("body (Markdown)")
    status = models.CharField("status", max_length=10, choices=Status, default=Status.QUEUED, db_index=True)
    attempts = models.PositiveIntegerField("attempts", default=0)
    task_name = models.CharField("task", max_length=100, blank=True, help_text="The child that last sent it.")
    message = models.TextField("last message", blank=True)
    error = models.TextField("last error", blank=True)
    created_at = models.DateTimeField("created", auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField("updated", auto_now=True)
    sent_at = models.DateTimeField("sent", null=True, blank=True)

    objects = MailOutcomeQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "mail outcome"
        verbose_name_plural = "mail outcomes"

    def __str__(self):
        return f"#{self.pk} {self.subject} ({self.status})"


class TaskEvent(models.Model):
    # A default, not auto_now_add: the master records in batches and keeps the time each event arrived.
    created_at = models.DateTimeField("time", default=timezone.now, db_index=True)
    task_name = models.CharField("task", max_length=100, blank=True, db_index=True)
    event = models.CharField(
        "event", max_length=30, db_index=True, help_text="info, error, start, exit, restart"
    )
    payload = models.JSONField("payload", default=dict, blank=True)
    outcome = models.ForeignKey(
        MailOutcome,
        verbose_name="mail outcome",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="events",
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "task event"
        verbose_name_plural = "task events"

    def __str__(self):
        return f"{self.event} from {self.task_name or 'master'}"


class UsageSample(models.Model):
    """One child's CPU and memory at one moment, as its monitor reported; kept for the dashboard's charts.

    The master writes one per child every RELIEVE_USAGE_INTERVAL seconds and deletes those older than
    a day as it goes, so the table stays bounded.
    """

    created_at = models.DateTimeField("time", default=timezone.now, db_index=True)
    task_name = models.CharField("task", max_length=100)
    pid = models.PositiveIntegerField("pid")
    memory = models.PositiveBigIntegerField("resident memory (bytes)")
    cpu_percent = models.FloatField("CPU %")

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = "usage sample"
        verbose_name_plural = "usage samples"

    def __str__(self):
        return f"{self.task_name} at {self.created_at:%H:%M:%S}: {self.memory / 2**20:.1f} MiB"
