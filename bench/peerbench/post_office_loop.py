"""django-post-office's cron job, run back to back: send what is queued, rest 0.2 s, again.

Usage: python -m bench.peerbench.post_office_loop [--processes 4]
"""

import argparse
import os
import time

import django


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--rest", type=float, default=0.2)
    options = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.peerbench.settings")
    django.setup()
    from post_office.lockfile import default_lockfile
    from post_office.mail import send_queued_mail_until_done

    while True:
        send_queued_mail_until_done(default_lockfile, options.processes, 1)
        time.sleep(options.rest)


if __name__ == "__main__":
    main()
