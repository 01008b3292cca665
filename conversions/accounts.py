"""ccweb's side of accounts (django-allauth): who may sign up, which logins wait for a verified
address, and which addresses count as a user's own.

Sign-up follows ACCOUNT_SIGNUP: open, invite (only someone holding a valid team invitation, with the
address it was sent to) or closed. The invitation comes from the session: its page remembers it
there (teams.invitation_remember), for the sign-up that follows.

Addresses: one signed up with is verified through the link allauth mails (ACCOUNT_EMAIL_VERIFICATION);
an account made any other way (the admin, createsuperuser, a script: staff) comes with its address
verified, staff vouching for it."""

from allauth.account import stages
from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.forms import SignupForm as AllauthSignupForm
from allauth.account.models import EmailAddress
from allauth.account.utils import user_email
from allauth.core import context as allauth_context
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.models import SocialLogin
from django import forms
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db.models.signals import post_save
from django.dispatch import receiver
from django.http import HttpRequest

from conversions.models import TeamInvitation

# The stage allauth runs to hold a login until the address is verified, and ours in its place.
ALLAUTH_VERIFICATION_STAGE = "allauth.account.stages.EmailVerificationStage"
VERIFICATION_STAGE = "conversions.accounts.EmailVerificationStage"
# Set on a user being saved by a sign-up (password or OpenID Connect), which verifies its address itself.
SIGNING_UP = "_ccweb_signing_up"


def verified_emails(user: AbstractBaseUser) -> set[str]:
    """The addresses that are the user's own, lower-cased: the verified ones; for an account allauth
    knows no address of (made by staff before sign-ups existed), its e-mail."""
    addresses = list(EmailAddress.objects.filter(user_id=user.pk).values_list("email", "verified"))
    if not addresses:
        return {user.email.lower()} if getattr(user, "email", "") else set()
    return {email.lower() for email, verified in addresses if verified}


def invitation_for_signup(request: HttpRequest) -> TeamInvitation | None:
    """The valid invitation this browser opened last, if any (see teams.invitation_remember)."""
    from conversions import teams

    return teams.invitation_remembered(request)


def signup_allowed(request: HttpRequest, *, email: str = "") -> bool:
    """Whether this browser may make an account now (with that address, when known)."""
    if settings.ACCOUNT_SIGNUP == "open":
        return True
    if settings.ACCOUNT_SIGNUP == "invite":
        invitation = invitation_for_signup(request)
        return invitation is not None and (not email or email.lower() == invitation.email)
    return False


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest) -> bool:
        return signup_allowed(request)

    def save_user(
        self, request: HttpRequest, user: AbstractBaseUser, form: forms.Form, commit: bool = True
    ) -> AbstractBaseUser:
        setattr(user, SIGNING_UP, True)
        return super().save_user(request, user, form, commit)

    def clean_email(self, email: str) -> str:
        """A sign-up by invitation uses the address invited (adding an address later is free)."""
        email = super().clean_email(email)
        request = allauth_context.request
        if settings.ACCOUNT_SIGNUP == "invite" and request is not None and not request.user.is_authenticated:
            invitation = invitation_for_signup(request)
            if invitation is not None and email.lower() != invitation.email:
                raise forms.ValidationError(
                    "Your invitation was sent to another address. Sign up with the address it was sent to."
                )
        return email

    def get_login_stages(self) -> list[str]:
        stages = super().get_login_stages()
        return [VERIFICATION_STAGE if path == ALLAUTH_VERIFICATION_STAGE else path for path in stages]


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest, sociallogin: SocialLogin) -> bool:
        """The same rule as a sign-up with a password: the provider proves who someone is, not
        that they may have an account here."""
        return signup_allowed(request, email=user_email(sociallogin.user) or "")

    def save_user(
        self, request: HttpRequest, sociallogin: SocialLogin, form: forms.Form | None = None
    ) -> AbstractBaseUser:
        setattr(sociallogin.user, SIGNING_UP, True)
        return super().save_user(request, sociallogin, form)


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="conversions.accounts.vouch_for_staff_made_address")
def vouch_for_staff_made_address(
    sender: type, instance: AbstractBaseUser, created: bool, raw: bool = False, **kwargs: object
) -> None:
    """An account made outside sign-up comes with its address verified and primary: staff made it."""
    if not created or raw or getattr(instance, SIGNING_UP, False) or not instance.email:
        return
    EmailAddress.objects.get_or_create(
        user=instance, email=instance.email, defaults={"verified": True, "primary": True}
    )


class EmailVerificationStage(stages.EmailVerificationStage):
    """allauth's check that an address is verified before logging in, except for an account
    allauth knows no address of: made by staff before ccweb had sign-ups, or without an address
    (createsuperuser allows that). It logs in as it always did."""

    def handle(self) -> tuple[object, bool]:
        if not self.login.signup and not EmailAddress.objects.filter(user_id=self.login.user.pk).exists():
            return None, True
        return super().handle()


class SignupForm(AllauthSignupForm):
    """allauth's sign-up form, with ccweb's words for its fields."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.fields["email"].label = "E-mail address"
        self.fields["email"].help_text = "We send a link to it, to make sure it is yours."
        self.fields["password2"].label = "Password again"
        for field in self.fields.values():
            field.widget.attrs.pop("placeholder", None)


def context(request: HttpRequest) -> dict:
    """Template context for every page: how people get an account (the login and sign-up pages)."""
    return {"signup_mode": settings.ACCOUNT_SIGNUP, "signup_open": settings.ACCOUNT_SIGNUP == "open"}
