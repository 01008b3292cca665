from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "ccweb-demo"
DEMO_EMAIL = "demo@example.com"
# Staff reach the admin with a login of its own: the demo user is an ordinary user.
DEMO_ADMIN_USERNAME = "demo-admin"
DEMO_ADMIN_PASSWORD = "ccweb-demo-admin"
DEMO_ADMIN_EMAIL = "demo-admin@example.com"


class Command(BaseCommand):
    help = (
        "Create (or reset) the development logins bin/run prints: demo, an ordinary user with a verified "
        "address, and demo-admin, a superuser for the admin. Refused in production."
    )

    def handle(self, *args: object, **options: object) -> None:
        if settings.PRODUCTION:
            raise CommandError("The demo users are for development only (CCWEB_MODE=production).")
        self._ensure(DEMO_USERNAME, DEMO_EMAIL, DEMO_PASSWORD, admin=False)
        self._ensure(DEMO_ADMIN_USERNAME, DEMO_ADMIN_EMAIL, DEMO_ADMIN_PASSWORD, admin=True)

    def _ensure(self, username: str, email: str, password: str, *, admin: bool) -> None:
        user, created = get_user_model().objects.get_or_create(username=username, defaults={"email": email})
        user.email = email
        user.is_staff = user.is_superuser = admin
        user.is_active = True
        user.set_password(password)
        user.save()
        # Verified and primary, as if confirmed by its link: the login never waits for a verification.
        EmailAddress.objects.filter(user=user).exclude(email__iexact=email).delete()
        EmailAddress.objects.update_or_create(user=user, email=email, defaults={"verified": True, "primary": True})
        self.stdout.write(f"demo user {'created' if created else 'ready'}: {username}")
