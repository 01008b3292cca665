"""The admin: staff act on jobs only with the permissions each action declares."""

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from conversions.models import ConversionJob

pytestmark = pytest.mark.django_db(transaction=True)
CHANGELIST = reverse("admin:conversions_conversionjob_changelist")


def staff(django_user_model, name: str, *codenames: str) -> User:
    user = django_user_model.objects.create_user(name, f"{name}@example.com", "password", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="conversions", codename__in=codenames))
    return user


@pytest.fixture
def lost_job(alice) -> ConversionJob:
    """A running job the engine does not know: refreshing it marks it failed."""
    return ConversionJob.objects.create(
        user=alice, output_format="jpg", remote_job_id="00000000-0000-4000-8000-0000000000aa"
    )


def refresh(client, job: ConversionJob):
    return client.post(CHANGELIST, {"action": "refresh_from_api", "_selected_action": [job.pk]}, follow=True)


def test_staff_who_may_only_view_jobs_cannot_refresh_them(client, django_user_model, live_engine, lost_job):
    client.force_login(staff(django_user_model, "viewer", "view_conversionjob"))
    page = client.get(CHANGELIST)
    assert page.status_code == 200
    assert str(lost_job.uuid) in page.content.decode()
    assert 'value="refresh_from_api"' not in page.content.decode()
    response = refresh(client, lost_job)
    assert "job(s) refreshed" not in response.content.decode()
    lost_job.refresh_from_db()
    assert lost_job.status == "waiting"


def test_staff_who_may_change_jobs_refresh_them_from_the_api(client, django_user_model, live_engine, lost_job):
    client.force_login(staff(django_user_model, "operator", "view_conversionjob", "change_conversionjob"))
    assert 'value="refresh_from_api"' in client.get(CHANGELIST).content.decode()
    response = refresh(client, lost_job)
    assert "1 job(s) refreshed." in response.content.decode()
    lost_job.refresh_from_db()
    assert (lost_job.status, lost_job.error_code) == ("error", "NOT_FOUND")
