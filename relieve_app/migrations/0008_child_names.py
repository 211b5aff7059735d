"""The `task_name` columns name the child that sent or reported: the admin says "child", not "task"."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("relieve_app", "0007_contact_task_path"),
    ]

    operations = [
        migrations.AlterField(
            model_name="mailoutcome",
            name="task_name",
            field=models.CharField(
                blank=True, help_text="The child that last sent it.", max_length=100, verbose_name="child"
            ),
        ),
        migrations.AlterField(
            model_name="taskevent",
            name="task_name",
            field=models.CharField(
                blank=True,
                db_index=True,
                help_text="Empty: the master itself.",
                max_length=100,
                verbose_name="child",
            ),
        ),
        migrations.AlterField(
            model_name="usagesample",
            name="task_name",
            field=models.CharField(max_length=100, verbose_name="child"),
        ),
    ]
