"""Teams run by their users: roles (Membership replaces the plain members table, every existing
member becoming a "member"), invitations by e-mail, and share links."""

import uuid

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def memberships_from_members(apps, schema_editor) -> None:
    """Everyone in a team so far is a member of it (staff make owners and admins in the admin)."""
    Team = apps.get_model("conversions", "Team")
    Membership = apps.get_model("conversions", "Membership")
    rows = Team.members.through.objects.values_list("team_id", "user_id")
    Membership.objects.bulk_create(
        (Membership(team_id=team_id, user_id=user_id, role="member") for team_id, user_id in rows.iterator()),
        batch_size=500,
    )


def members_from_memberships(apps, schema_editor) -> None:
    Team = apps.get_model("conversions", "Team")
    Membership = apps.get_model("conversions", "Membership")
    rows = Membership.objects.values_list("team_id", "user_id")
    Team.members.through.objects.bulk_create(
        (Team.members.through(team_id=team_id, user_id=user_id) for team_id, user_id in rows.iterator()),
        batch_size=500,
    )


class Migration(migrations.Migration):

    dependencies = [
        ('conversions', '0005_daily_job_count_and_poll_after'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterModelOptions(
            name='team',
            options={'ordering': ['name', 'id']},
        ),
        migrations.AlterField(
            model_name='team',
            name='name',
            field=models.CharField(max_length=80),
        ),
        migrations.CreateModel(
            name='Membership',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('uuid', models.UUIDField(default=uuid.uuid4, editable=False, unique=True)),
                ('role', models.CharField(choices=[('owner', 'Owner'), ('admin', 'Admin'), ('member', 'Member'), ('viewer', 'Viewer')], default='member', max_length=8)),
                ('joined_at', models.DateTimeField(auto_now_add=True)),
                ('team', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='memberships', to='conversions.team')),
                ('user', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='team_memberships', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'ordering': ['team', 'user__username'],
            },
        ),
        migrations.CreateModel(
            name='ShareLink',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('uuid', models.UUIDField(default=uuid.uuid4, editable=False, unique=True)),
                ('token', models.CharField(max_length=64, unique=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('expires_at', models.DateTimeField(blank=True, null=True)),
                ('password', models.CharField(blank=True, default='', max_length=128)),
                ('max_downloads', models.PositiveIntegerField(blank=True, null=True)),
                ('download_count', models.PositiveIntegerField(default=0)),
                ('last_downloaded_at', models.DateTimeField(blank=True, null=True)),
                ('revoked_at', models.DateTimeField(blank=True, null=True)),
                ('created_by', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('job', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='share_links', to='conversions.conversionjob')),
                ('output', models.ForeignKey(blank=True, help_text="The file shared; empty: all of the job's files.", null=True, on_delete=django.db.models.deletion.CASCADE, related_name='share_links', to='conversions.outputfile')),
            ],
            options={
                'ordering': ['-created_at', '-id'],
            },
        ),
        migrations.CreateModel(
            name='TeamInvitation',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('uuid', models.UUIDField(default=uuid.uuid4, editable=False, unique=True)),
                ('email', models.EmailField(max_length=254)),
                ('role', models.CharField(choices=[('owner', 'Owner'), ('admin', 'Admin'), ('member', 'Member'), ('viewer', 'Viewer')], default='member', max_length=8)),
                ('token_sha256', models.CharField(max_length=64, unique=True)),
                ('status', models.CharField(choices=[('pending', 'Pending'), ('accepted', 'Accepted'), ('declined', 'Declined'), ('revoked', 'Revoked')], default='pending', max_length=8)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('expires_at', models.DateTimeField()),
                ('answered_at', models.DateTimeField(blank=True, null=True)),
                ('answered_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('invited_by', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('team', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='invitations', to='conversions.team')),
            ],
            options={
                'ordering': ['-created_at'],
            },
        ),
        migrations.AddConstraint(
            model_name='membership',
            constraint=models.UniqueConstraint(fields=('team', 'user'), name='membership_unique_per_team_user'),
        ),
        migrations.AddConstraint(
            model_name='sharelink',
            constraint=models.CheckConstraint(condition=models.Q(('max_downloads__isnull', True), ('max_downloads__gte', 1), _connector='OR'), name='share_link_download_limit_positive'),
        ),
        migrations.AddConstraint(
            model_name='teaminvitation',
            constraint=models.UniqueConstraint(condition=models.Q(('status', 'pending')), fields=('team', 'email'), name='invitation_one_pending_per_email'),
        ),
        # Last, after every change of a table's schema: PostgreSQL refuses to alter a table with rows
        # written in the same transaction whose foreign keys are still to be checked.
        migrations.RunPython(memberships_from_members, members_from_memberships),
        migrations.RemoveField(model_name='team', name='members'),
        migrations.AddField(
            model_name='team',
            name='members',
            field=models.ManyToManyField(blank=True, related_name='conversion_teams', through='conversions.Membership', to=settings.AUTH_USER_MODEL),
        ),
    ]
