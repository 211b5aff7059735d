"""The state of every task, what happened to each contact message, the event log of both, and the masters."""

from django.db import models
from django.db.models.functions import Now
from django.tasks import TaskResultStatus
from django.utils import timezone

from relieve_app.contact import references


class TaskRecord(models.Model):
    """One enqueued task and what became of it: the row behind Django's TaskResult.

    Inserted by ``enqueue()`` in the caller's transaction; every later change is the master's.
    A claim moves READY to RUNNING in one conditional UPDATE and names its ``owner`` with a
    ``lease_until``, so several masters can share the table later without running a task twice.
    """

    Status = TaskResultStatus
    FINISHED = (Status.SUCCESSFUL, Status.FAILED)

    task_path = models.CharField("task", max_length=255)
    queue_name = models.CharField("queue", max_length=100)
    backend = models.CharField("backend", max_length=100)
    priority = models.SmallIntegerField("priority", default=0)
    takes_context = models.BooleanField("takes context", default=False)
    run_after = models.DateTimeField("run after", null=True, blank=True)
    timeout = models.FloatField("timeout (s)", null=True, blank=True, help_text="Empty: the master's.")
    max_attempts = models.PositiveSmallIntegerField("max attempts", null=True, blank=True)
    args = models.JSONField("arguments", default=list, blank=True)
    kwargs = models.JSONField("keyword arguments", default=dict, blank=True)
    status = models.CharField("status", max_length=10, choices=Status, default=Status.READY)
    return_value = models.JSONField("return value", null=True, blank=True)
    errors = models.JSONField("errors", default=list, blank=True)
    worker_ids = models.JSONField("workers", default=list, blank=True, help_text="One entry per attempt.")
    owner = models.CharField("owner", max_length=200, blank=True, help_text="host:pid:start of the master.")
    lease_until = models.DateTimeField("lease until", null=True, blank=True)
    enqueued_at = models.DateTimeField("enqueued", default=timezone.now)
    started_at = models.DateTimeField("started", null=True, blank=True)
    last_attempted_at = models.DateTimeField("last attempted", null=True, blank=True)
    finished_at = models.DateTimeField("finished", null=True, blank=True, db_index=True)
    updated_at = models.DateTimeField("updated", default=timezone.now)
    # Schedules and control (tasks/schedule/, tasks/cancel.py).
    schedule = models.CharField(
        "schedule",
        max_length=100,
        blank=True,
        default="",
        db_default="",  # rows inserted by SQL, as any project may, need not name it
        db_index=True,
        help_text="The RELIEVE_SCHEDULE entry that ran it.",
    )
    schedule_slot = models.DateTimeField("schedule slot", null=True, blank=True)
    cancel_requested_at = models.DateTimeField(
        "cancel requested", null=True, blank=True, help_text="Its master stops the child and ends it FAILED."
    )
    # Flow control: see relieve_app/tasks/unique.py and relieve_app/tasks/limits.py.
    unique_key = models.CharField(
        "unique key",
        max_length=64,
        null=True,
        blank=True,
        help_text="@task(unique=True): path and arguments.",
    )
    concurrency = models.PositiveIntegerField("concurrency cap", null=True, blank=True)
    rate = models.CharField("rate limit", max_length=30, blank=True, default="", db_default="")

    class Meta:
        ordering = ["-enqueued_at", "-id"]
        verbose_name = "task result"
        verbose_name_plural = "task results"
        indexes = [
            models.Index(fields=["status", "queue_name", "-priority", "run_after"], name="ready_idx"),
            # The admin's list: its ordering, alone and after each filter (they serve its filters'
            # values too, monitor/large_lists.py).
            models.Index(fields=["-enqueued_at", "-id"], name="results_idx"),
            models.Index(fields=["status", "-enqueued_at", "-id"], name="results_status_idx"),
            models.Index(fields=["queue_name", "-enqueued_at", "-id"], name="results_queue_idx"),
            models.Index(fields=["task_path", "-enqueued_at", "-id"], name="results_task_idx"),
        ]
        constraints = [
            # However many masters tick at once, one slot of one schedule is one row.
            models.UniqueConstraint(
                fields=["schedule", "schedule_slot"],
                condition=models.Q(schedule_slot__isnull=False),
                name="one_run_per_slot",
            ),
            # One waiting call per unique key: concurrent enqueues race on this index, not on a read.
            models.UniqueConstraint(
                fields=["unique_key"],
                condition=models.Q(status="READY", started_at__isnull=True, unique_key__isnull=False),
                name="unique_waiting_task",
            ),
        ]

    def __str__(self):
        return f"#{self.pk} {self.task_path} ({self.status})"

    @property
    def attempts(self):
        return len(self.worker_ids)


class MailOutcome(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        RETRYING = "retrying", "Retrying"
        FAILED = "failed", "Failed"

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
    task_name = models.CharField(
        "child", max_length=100, blank=True, help_text="The child that last sent it."
    )
    message = models.TextField("last message", blank=True)
    error = models.TextField("last error", blank=True)
    created_at = models.DateTimeField("created", auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField("updated", auto_now=True)
    sent_at = models.DateTimeField("sent", null=True, blank=True)
    task_result = models.ForeignKey(
        TaskRecord,
        verbose_name="task result",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="mail_outcomes",
        help_text="The task that delivers it; its state and this row's are written together.",
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "mail outcome"
        verbose_name_plural = "mail outcomes"

    def __str__(self):
        return f"#{self.pk} {self.subject} ({self.status})"


class TaskEvent(models.Model):
    # A default, not auto_now_add: the master records in batches and keeps the time each event arrived.
    created_at = models.DateTimeField("time", default=timezone.now, db_index=True)
    task_name = models.CharField(
        "child", max_length=100, blank=True, db_index=True, help_text="Empty: the master itself."
    )
    event = models.CharField(
        "event",
        max_length=30,
        db_index=True,
        help_text="info, error, timeout, retry, start, exit, restart, recycle",
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
    task_result = models.ForeignKey(
        TaskRecord,
        verbose_name="task result",
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
    task_name = models.CharField("child", max_length=100)
    pid = models.PositiveIntegerField("pid")
    memory = models.PositiveBigIntegerField("resident memory (bytes)")
    cpu_percent = models.FloatField("CPU %")

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = "usage sample"
        verbose_name_plural = "usage samples"

    def __str__(self):
        return f"{self.task_name} at {self.created_at:%H:%M:%S}: {self.memory / 2**20:.1f} MiB"


class RelieveMasterQuerySet(models.QuerySet):
    def with_gone(self):
        """Annotate `gone`: the lease ran out by the database's clock, so no host's clock skew counts."""
        expired = models.Q(expires_at__lt=Now())
        return self.annotate(gone=models.ExpressionWrapper(expired, output_field=models.BooleanField()))

    def live(self):
        return self.filter(expires_at__gte=Now())

    def gone(self):
        return self.filter(expires_at__lt=Now())


class RelieveMaster(models.Model):
    """One running `runrelieve`: registered at start, renewed by its heartbeat, deleted when it stops.

    A row whose lease (`expires_at`) has run out belongs to a master that vanished without stopping.
    """

    id = models.CharField("master id", max_length=200, primary_key=True)
    host = models.CharField("host", max_length=150, db_index=True)
    pid = models.PositiveIntegerField("pid")
    started_at = models.DateTimeField("started")
    heartbeat_at = models.DateTimeField("last heartbeat")
    expires_at = models.DateTimeField("lease until", db_index=True)
    children = models.PositiveIntegerField("children", default=0)
    queues = models.JSONField("queues", default=list, blank=True)

    objects = RelieveMasterQuerySet.as_manager()

    class Meta:
        ordering = ["host", "started_at"]
        verbose_name = "master"
        verbose_name_plural = "masters"

    def __str__(self):
        return f"{self.host} pid {self.pid}"


class Pool(RelieveMaster):
    """The admin's live pool page, as an entry of the app's own section of the admin index.

    The admin index lists models only; this proxy adds no table and stands for the page (admin.py).
    """

    class Meta:
        proxy = True
        verbose_name = "live pool"
        verbose_name_plural = "live pool"


class Schedule(models.Model):
    """What the database keeps of one RELIEVE_SCHEDULE entry: the admin's switch and where it is up to.

    The setting defines the entry; this row outlives restarts. ``since`` is when a master first saw
    it (no slot before that is run), ``last_slot`` the latest slot enqueued.
    """

    name = models.CharField("name", max_length=100, primary_key=True)
    enabled = models.BooleanField(
        "enabled", null=True, blank=True, help_text="Empty: as the setting says; set by the admin's actions."
    )
    since = models.DateTimeField("first seen", default=timezone.now)
    last_slot = models.DateTimeField("last slot", null=True, blank=True)
    updated_at = models.DateTimeField("updated", default=timezone.now)

    class Meta:
        ordering = ["name"]
        verbose_name = "schedule"
        verbose_name_plural = "schedules"

    def __str__(self):
        return self.name


class PausedQueue(models.Model):
    """A queue no master starts a task of while this row exists; enqueue() still takes its tasks."""

    name = models.CharField("queue", max_length=100, primary_key=True)
    paused_at = models.DateTimeField("paused", default=timezone.now)

    class Meta:
        ordering = ["name"]
        verbose_name = "paused queue"
        verbose_name_plural = "paused queues"

    def __str__(self):
        return self.name


class TaskProgress(models.Model):
    """How far a running task says it is (``relieve_app.control.report_progress``); one row per task."""

    task_result = models.OneToOneField(
        TaskRecord,
        verbose_name="task result",
        primary_key=True,
        on_delete=models.CASCADE,
        related_name="progress",
    )
    done = models.FloatField("done")
    total = models.FloatField("total", null=True, blank=True)
    note = models.CharField("note", max_length=200, blank=True)
    at = models.DateTimeField("reported", default=timezone.now)

    class Meta:
        verbose_name = "task progress"
        verbose_name_plural = "task progress"

    def __str__(self):
        return f"#{self.task_result_id}: {self.done:g}/{self.total if self.total is not None else '?'}"


class TaskStart(models.Model):
    """When a rate-limited task (``@task(rate=...)``) started an attempt: the log its sliding window counts.

    Written by the claim that starts it, in the same transaction; rows older than the window are
    deleted as new ones come.
    """

    task_path = models.CharField("task", max_length=255)
    at = models.DateTimeField("started")

    class Meta:
        ordering = ["task_path", "at"]
        verbose_name = "rate-limited start"
        verbose_name_plural = "rate-limited starts"
        indexes = [models.Index(fields=["task_path", "at"], name="task_start_idx")]

    def __str__(self):
        return f"{self.task_path} at {self.at:%H:%M:%S}"
