"""An invitation end to end in Chromium, with sign-up by invitation only: Alice makes a team, invites
bob@example.com and shares a conversion with it; the e-mail's link, opened by a browser without an
account, leads through sign-up and the verification link mailed to Bob, to accepting; Bob then sees
the team's shared conversion and downloads it. No page breaks the Content-Security-Policy."""

import re

import pytest
from django.core.files.base import ContentFile
from playwright.sync_api import expect

from conversions.models import ConversionJob, Membership, OutputFile
from tests.conftest import log_in, wait_for
from tests.test_browser_csp import watch_violations

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def alices_job(alice) -> ConversionJob:
    job = ConversionJob.objects.create(user=alice, output_format="txt", input_filename="minutes.pdf", status="finished")
    output = OutputFile(job=job, filename="minutes.txt", size=21)
    output.file.save(output.filename, ContentFile(b"Decisions of the day."), save=True)
    return job


def link_in(message, path: str) -> str:
    return re.search(rf"https?://\S+{re.escape(path)}\S*", message.body).group(0)


def test_an_invited_person_signs_up_accepts_and_downloads_what_the_team_shares(
    page, browser, live_engine, settings, alice, alices_job, mailoutbox
):
    settings.ACCOUNT_SIGNUP = "invite"
    violations = watch_violations(page)
    log_in(page, "alice", "alice-password")
    page.get_by_role("link", name="Teams").click()
    page.get_by_label("Team name").fill("Design")
    page.get_by_role("button", name="Create the team").click()
    expect(page.get_by_role("status")).to_contain_text("The team Design was created.")
    page.get_by_role("link", name="Members").click()
    page.get_by_label("E-mail address").fill("bob@example.com")
    page.get_by_label("Role", exact=True).select_option(label="Member")
    page.get_by_role("button", name="Send the invitation").click()
    expect(page.get_by_role("status")).to_contain_text("An invitation was e-mailed to bob@example.com.")

    page.goto(alices_job.get_absolute_url())
    page.get_by_label("Shared with").select_option(label="Design")
    page.get_by_role("button", name="Save sharing").click()
    expect(page.get_by_role("status")).to_contain_text("The members of Design now see this conversion")

    [invitation_mail] = mailoutbox
    assert invitation_mail.to == ["bob@example.com"]
    bobs = browser.new_context(accept_downloads=True, base_url=live_engine.removesuffix("/engine"))
    bob = bobs.new_page()
    bob.set_default_timeout(30_000)
    violations += watch_violations(bob)
    bob.goto(link_in(invitation_mail, "/invitations/"))
    expect(bob.get_by_role("heading", name="Join Design?")).to_be_visible()
    expect(bob.locator("main")).to_contain_text("alice invites you to join the team Design as member.")
    bob.get_by_role("link", name="Sign up with bob@example.com").click()
    expect(bob.get_by_label("E-mail address")).to_have_value("bob@example.com")
    bob.get_by_label("Username").fill("bob")
    bob.get_by_label("Password", exact=True).fill("bobs-long-pass-phrase")
    bob.get_by_label("Password again").fill("bobs-long-pass-phrase")
    bob.get_by_role("button", name="Sign up").click()
    expect(bob.get_by_role("heading", name="Check your e-mail")).to_be_visible()

    verification = wait_for(lambda: mailoutbox[1:] and mailoutbox[1])
    assert verification.to == ["bob@example.com"]
    bob.goto(link_in(verification, "/accounts/confirm-email/"))
    bob.get_by_role("button", name="Confirm").click()
    expect(bob.get_by_role("heading", name="Join Design?")).to_be_visible()  # back on the invitation, logged in
    expect(bob.get_by_role("button", name="Log out bob")).to_be_visible()
    bob.get_by_role("button", name="Accept").click()
    expect(bob.get_by_role("status")).to_contain_text("Welcome to Design")
    assert Membership.objects.get(team__name="Design", user__username="bob").role == "member"

    row = bob.locator("#team-jobs tr", has_text="minutes.pdf")
    expect(row).to_contain_text("alice")
    with bob.expect_download() as download_info:
        row.get_by_role("link", name="minutes.txt").click()
    with open(download_info.value.path(), "rb") as downloaded:
        assert downloaded.read() == b"Decisions of the day."
    bobs.close()
    assert violations == []


def test_the_account_pages_look_like_ccweb_and_keep_to_the_policy(page, alice):
    violations = watch_violations(page)
    for path, heading in (
        ("/accounts/signup/", "Sign up"),
        ("/accounts/password/reset/", "Password Reset"),
    ):
        page.goto(path)
        expect(page.get_by_role("heading", level=1)).to_have_text(heading)
        expect(page.locator(".brand")).to_have_text("ccweb")  # inside ccweb's own page
    log_in(page, "alice", "alice-password")
    page.get_by_role("link", name="Account").click()
    expect(page.locator("main")).to_contain_text("verified address: alice@example.com")
    page.get_by_role("link", name="E-mail addresses").click()
    expect(page.locator("main")).to_contain_text("alice@example.com")
    page.go_back()
    page.get_by_role("link", name="Change your password").click()
    page.get_by_label("Current Password").fill("alice-password")
    page.locator("input[name=password1]").fill("a-new-long-phrase")
    page.locator("input[name=password2]").fill("a-new-long-phrase")
    page.get_by_role("button", name="Change Password").click()
    expect(page.get_by_role("status")).to_contain_text("Password successfully changed.")
    assert violations == []
