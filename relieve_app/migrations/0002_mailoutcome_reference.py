"""Give every message an unguessable reference; rows stored before it get one each here."""

from django.db import migrations, models

import relieve_app.contact.references


def give_references(apps, schema_editor):
    MailOutcome = apps.get_model("relieve_app", "MailOutcome")
    for outcome in MailOutcome.objects.filter(reference__isnull=True).only("pk").iterator():
        MailOutcome.objects.filter(pk=outcome.pk).update(reference=relieve_app.contact.references.new())


class Migration(migrations.Migration):
    dependencies = [("relieve_app", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="mailoutcome",
            name="reference",
            field=models.CharField(max_length=64, null=True, editable=False, verbose_name="reference"),
        ),
        migrations.RunPython(give_references, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="mailoutcome",
            name="reference",
            field=models.CharField(
                default=relieve_app.contact.references.new,
                editable=False,
                max_length=64,
                unique=True,
                verbose_name="reference",
            ),
        ),
    ]
