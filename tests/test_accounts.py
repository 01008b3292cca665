"""Accounts (django-allauth): sign-up open, by invitation or closed; a signed-up account logs in once
its address is verified; password reset by e-mail; the login page keeps its words; accounts staff
made log in as before; the demo user is an ordinary user."""

import re
from datetime import timedelta

import pytest
from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from conversions.models import Membership, Team, TeamInvitation
from conversions.teams import _token_sha256
from tests.test_settings import manage

pytestmark = pytest.mark.django_db
User = get_user_model()


def link_in(message, path: str) -> str:
    """The path of the first link in an e-mail that starts with `path`."""
    return re.search(rf"https?://[^/\s]+({re.escape(path)}\S*)", message.body).group(1)


def sign_up(client, email: str = "dora@example.com", username: str = "dora", **extra):
    return client.post(
        reverse("account_signup"),
        {
            "email": email,
            "username": username,
            "password1": "a-long-pass-phrase",
            "password2": "a-long-pass-phrase",
            **extra,
        },
    )


def logged_in_as(client) -> str | None:
    """Who the client's session belongs to, as the Teams page says."""
    response = client.get(reverse("conversions:team_list"))
    if response.status_code != 200:
        return None
    return re.search(r"Log out (\w+)", response.content.decode()).group(1)


def test_the_login_page_keeps_its_words_and_offers_sign_up_and_reset(client):
    html = client.get(reverse("account_login")).content.decode()
    assert '<label for="id_login">Username</label>' in html
    assert '<button type="submit">Log in</button>' in html
    assert f'href="{reverse("account_signup")}"' in html and f'href="{reverse("account_reset_password")}"' in html
    assert "Log in with" not in html  # no OpenID Connect provider configured


def test_a_sign_up_logs_in_only_once_its_address_is_verified(client, mailoutbox):
    response = sign_up(client)
    assert response.status_code == 302 and response["Location"] == reverse("account_email_verification_sent")
    assert "We sent you a link to verify your address." in client.get(response["Location"]).content.decode()
    user = User.objects.get(username="dora")
    assert not user.is_staff and EmailAddress.objects.get(user=user).verified is False
    [message] = mailoutbox
    assert message.to == ["dora@example.com"] and message.subject.startswith("[ccweb] ")
    confirm = link_in(message, "/accounts/confirm-email/")

    other = type(client)()
    refused = other.post(reverse("account_login"), {"login": "dora", "password": "a-long-pass-phrase"})
    assert refused["Location"] == reverse("account_email_verification_sent")
    assert logged_in_as(other) is None

    assert "dora@example.com" in client.get(confirm).content.decode()
    done = client.post(confirm)
    assert done.status_code == 302 and done["Location"] == reverse("conversions:dashboard")
    assert EmailAddress.objects.get(user=user).verified is True
    assert logged_in_as(client) == "dora"
    assert other.post(reverse("account_login"), {"login": "dora@example.com", "password": "a-long-pass-phrase"})[
        "Location"
    ] == reverse("conversions:dashboard")


def test_accounts_staff_make_come_with_their_address_verified(client):
    call_command("createsuperuser", interactive=False, username="root", email="root@example.com", verbosity=0)
    root = User.objects.get(username="root")
    root.set_password("root-password")
    root.save()
    assert list(EmailAddress.objects.filter(user=root).values_list("email", "verified", "primary")) == [
        ("root@example.com", True, True)
    ]
    response = client.post(reverse("account_login"), {"login": "root@example.com", "password": "root-password"})
    assert response.status_code == 302 and response["Location"] == reverse("conversions:dashboard")
    assert logged_in_as(client) == "root"


def test_accounts_from_before_sign_ups_or_without_an_address_log_in_as_before(client, alice):
    EmailAddress.objects.all().delete()  # as for accounts made before allauth arrived
    User.objects.create_user("noaddress", "", "no-address-password")
    for username, password in (("alice", "alice-password"), ("noaddress", "no-address-password")):
        response = client.post(reverse("account_login"), {"login": username, "password": password})
        assert response["Location"] == reverse("conversions:dashboard"), username
        assert logged_in_as(client) == username
        client.logout()


def test_a_wrong_password_is_refused_in_words(client, alice):
    response = client.post(reverse("account_login"), {"login": "alice", "password": "nope"})
    assert response.status_code == 200
    assert "The username and/or password you specified are not correct." in response.content.decode()
    assert logged_in_as(client) is None


def test_a_forgotten_password_is_reset_through_the_mailed_link(client, alice, mailoutbox):
    client.post(reverse("account_reset_password"), {"email": "alice@example.com"})
    [message] = mailoutbox
    reset = link_in(message, "/accounts/password/reset/key/")
    form_page = client.get(reset, follow=True)
    assert form_page.status_code == 200
    set_password = form_page.redirect_chain[-1][0] if form_page.redirect_chain else reset
    done = client.post(set_password, {"password1": "a-brand-new-phrase", "password2": "a-brand-new-phrase"})
    assert done.status_code == 302
    assert client.post(reverse("account_login"), {"login": "alice", "password": "alice-password"}).status_code == 200
    assert (
        client.post(reverse("account_login"), {"login": "alice", "password": "a-brand-new-phrase"}).status_code == 302
    )
    assert logged_in_as(client) == "alice"


def invitation(team: Team, email: str, token: str = "an-invitation-token-of-enough-length") -> str:
    TeamInvitation.objects.create(
        team=team, email=email, token_sha256=_token_sha256(token), expires_at=timezone.now() + timedelta(days=1)
    )
    return token


def test_invite_only_sign_up_needs_an_invitation_and_its_address(client, settings, alice, mailoutbox):
    settings.ACCOUNT_SIGNUP = "invite"
    closed = client.get(reverse("account_signup")).content.decode()
    assert "Accounts here are made by invitation" in closed
    assert sign_up(client).status_code == 200 and not User.objects.filter(username="dora").exists()
    assert f'href="{reverse("account_signup")}"' not in client.get(reverse("account_login")).content.decode()

    team = Team.objects.create(name="Design")
    token = invitation(team, "dora@example.com")
    page = client.get(reverse("conversions:invitation", args=[token])).content.decode()
    assert "/accounts/signup/?email=dora%40example.com&amp;next=%2Finvitations%2F" in page
    assert (
        'value="dora@example.com"'
        in client.get(reverse("account_signup") + "?email=dora%40example.com").content.decode()
    )
    refused = sign_up(client, email="eve@example.com", username="eve")
    assert (
        "Your invitation was sent to another address. Sign up with the address it was sent to."
        in refused.content.decode()
    )
    assert not User.objects.filter(username="eve").exists()
    assert sign_up(client, email="Dora@Example.com").status_code == 302
    assert User.objects.filter(username="dora").exists()


def test_an_expired_invitation_opens_no_sign_up(client, settings):
    settings.ACCOUNT_SIGNUP = "invite"
    team = Team.objects.create(name="Design")
    token = invitation(team, "dora@example.com")
    client.get(reverse("conversions:invitation", args=[token]))
    TeamInvitation.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert "Accounts here are made by invitation" in sign_up(client).content.decode()
    assert not User.objects.filter(username="dora").exists()


def test_closed_sign_up_lets_nobody_in_even_with_an_invitation(client, settings):
    settings.ACCOUNT_SIGNUP = "closed"
    token = invitation(Team.objects.create(name="Design"), "dora@example.com")
    page = client.get(reverse("conversions:invitation", args=[token])).content.decode()
    assert "Sign up with" not in page and "Ask an administrator for an account with this address" in page
    assert "Accounts here are made by the administrators." in sign_up(client).content.decode()
    assert not User.objects.filter(username="dora").exists()


def test_an_invited_person_signs_up_verifies_and_comes_back_to_accept(client, settings, mailoutbox):
    settings.ACCOUNT_SIGNUP = "invite"
    team = Team.objects.create(name="Design")
    token = invitation(team, "dora@example.com")
    here = reverse("conversions:invitation", args=[token])
    client.get(here)
    assert sign_up(client, next=here).status_code == 302
    done = client.post(link_in(mailoutbox[0], "/accounts/confirm-email/"))
    assert done["Location"] == here
    accept = client.post(reverse("conversions:invitation_accept", args=[token]))
    assert accept["Location"] == team.get_absolute_url()
    assert Membership.objects.get(team=team).user.username == "dora"


def test_the_demo_user_is_an_ordinary_user_with_a_verified_address(client):
    call_command("ccweb_demo_user")
    call_command("ccweb_demo_user")  # again, as every bin/run does
    demo = User.objects.get(username="demo")
    assert not demo.is_superuser and not demo.is_staff
    assert list(EmailAddress.objects.filter(user=demo).values_list("email", "verified", "primary")) == [
        ("demo@example.com", True, True)
    ]
    assert client.post(reverse("account_login"), {"login": "demo", "password": "ccweb-demo"})["Location"] == reverse(
        "conversions:dashboard"
    )
    admin = User.objects.get(username="demo-admin")
    assert admin.is_superuser and admin.is_staff and admin.check_password("ccweb-demo-admin")


def test_account_settings_are_checked_at_start():
    bad = manage("check", ACCOUNT_SIGNUP="sometimes")
    assert bad.returncode != 0 and "ACCOUNT_SIGNUP must be 'open', 'invite' or 'closed'." in bad.stderr
    bad = manage("check", ACCOUNT_EMAIL_VERIFICATION="later")
    assert bad.returncode != 0 and "ACCOUNT_EMAIL_VERIFICATION must be 'mandatory', 'optional' or 'none'." in bad.stderr
    bad = manage("check", OIDC_SERVER_URL="https://sso.example.com")
    assert bad.returncode != 0 and "OIDC_CLIENT_ID must be set with OIDC_SERVER_URL." in bad.stderr


def test_the_account_page_leads_to_addresses_and_password(client, alice):
    client.force_login(alice)
    html = client.get(reverse("conversions:account")).content.decode()
    assert "verified address: alice@example.com" in html
    assert f'href="{reverse("account_email")}"' in html and f'href="{reverse("account_change_password")}"' in html
    assert "socialaccount" not in html  # no provider configured, nothing to connect
    changed = client.post(
        reverse("account_change_password"),
        {"oldpassword": "alice-password", "password1": "a-brand-new-phrase", "password2": "a-brand-new-phrase"},
    )
    assert changed.status_code == 302
    alice.refresh_from_db()
    assert alice.check_password("a-brand-new-phrase")
