"""The banner every relieve admin page shows when no master answers: pending rows then wait for one."""

from django import template

from relieve_app.monitor import status

register = template.Library()


@register.inclusion_tag("admin/relieve_app/master_banner.html")
def relieve_master_banner():
    return {"alive": status.master_alive()}
