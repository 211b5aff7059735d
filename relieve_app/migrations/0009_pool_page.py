"""The live pool page as an entry of the app's section of the admin index: a proxy, no table."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("relieve_app", "0008_child_names"),
    ]

    operations = [
        migrations.CreateModel(
            name="Pool",
            fields=[],
            options={
                "verbose_name": "live pool",
                "verbose_name_plural": "live pool",
                "proxy": True,
                "indexes": [],
                "constraints": [],
            },
            bases=("relieve_app.relievemaster",),
        ),
    ]
