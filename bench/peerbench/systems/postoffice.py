"""django-post-office: the view queues an Email row; `send_queued_mail --processes 4` sends them."""

from .base import System


class PostOffice(System):
    def worker_commands(self, python, workers):
        return [[python, "-m", "bench.peerbench.post_office_loop", "--processes", str(workers)]]


POST_OFFICE = PostOffice(
    name="django-post-office",
    label="django-post-office",
    enqueue="bench.peerbench.jobs.enqueue_post_office",
    apps=("post_office",),
    note="the view renders and queues; send_queued_mail -p 4 (its cron job) runs in a loop, 0.2 s apart",
)
