"""Controlling tasks and queues from anywhere: the web, the shell, a task, a management command.

Each name here is public; the work is done in the modules it comes from.
"""

# Cancel a task; pause and resume a queue.
from relieve_app.tasks.cancel import TaskCancelled as TaskCancelled
from relieve_app.tasks.cancel import acancel as acancel
from relieve_app.tasks.cancel import cancel as cancel
from relieve_app.tasks.pausing import pause_queue as pause_queue
from relieve_app.tasks.pausing import paused_queues as paused_queues
from relieve_app.tasks.pausing import resume_queue as resume_queue

# isort: split
# Flow control and visibility: back-pressure at enqueue, a task's progress.
from relieve_app.tasks.backpressure import QueueFull as QueueFull
from relieve_app.tasks.progress import progress as progress
from relieve_app.tasks.progress import report_progress as report_progress
