"""Staff run an action on a job in the admin, in Debian's Chromium, and read its per-object report."""

import pytest
from django.contrib.auth.models import Permission
from playwright.sync_api import expect

from conversions import services
from conversions.cloudconvert.client import get_client
from conversions.models import ActivityEvent, ConversionJob

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_staff_cancel_a_running_job_and_see_what_became_of_each(page, alice, django_user_model, live_engine):
    waiting = services.job_start(user=alice, output_format="jpg", options={}, input_filename="waiting.png")
    done = ConversionJob.objects.create(user=alice, output_format="jpg", input_filename="done.png", status="finished")
    operator = django_user_model.objects.create_user(
        "operator", "operator@example.com", "operator-password", is_staff=True
    )
    operator.user_permissions.set(
        Permission.objects.filter(codename__in=["view_conversionjob", "change_conversionjob"])
    )

    page.goto("/admin/login/?next=/admin/conversions/conversionjob/")
    page.get_by_label("Username").fill("operator")
    page.get_by_label("Password").fill("operator-password")
    page.get_by_role("button", name="Log in").click()
    for name in ("waiting.png", "done.png"):
        page.locator("#result_list tr", has_text=name).get_by_role("checkbox").check()
    page.get_by_role("combobox", name="Action").select_option(label="Cancel the selected jobs")
    page.get_by_role("button", name="Go").click()

    expect(page.locator(".messagelist")).to_have_text(
        "1 cancelled, 1 could not be: done.png → jpg (finished): it had already ended."
    )
    expect(page.locator("#result_list tr", has_text="waiting.png")).to_contain_text("Failed")
    waiting.refresh_from_db()
    assert waiting.error_message == "The conversion was cancelled."
    assert get_client().show_job(waiting.remote_job_id)["status"] == "error"
    done.refresh_from_db()
    assert done.status == "finished"
    assert ActivityEvent.objects.get().actor == operator
