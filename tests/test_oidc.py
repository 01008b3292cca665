"""Sign-in through an OpenID Connect provider configured by settings alone (OIDC_*): a tiny provider
runs here on a loopback port (discovery document, authorize endpoint answering with a code, token
endpoint checking the client's secret and PKCE and returning an RS256-signed id_token, user info,
JWKS), and ccweb signs someone in through it over real HTTP."""

import base64
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
import pytest
import requests
from allauth.account.models import EmailAddress
from cryptography.hazmat.primitives.asymmetric import rsa
from django.contrib.auth import get_user_model
from django.urls import reverse

from conversions.models import Team, TeamInvitation
from tests.test_accounts import invitation, logged_in_as
from tests.test_settings import manage

pytestmark = pytest.mark.django_db
User = get_user_model()
CLIENT_ID = "ccweb-test"
CLIENT_SECRET = "a-client-secret"
KEY_ID = "test-key"


class Provider(ThreadingHTTPServer):
    """The provider's state: its signing key, the codes it handed out, and who signs in."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), ProviderHandler)
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.codes: dict[str, dict] = {}
        self.person = {
            "sub": "u-4711",
            "email": "erin@example.com",
            "email_verified": True,
            "preferred_username": "erin",
        }
        self.audience = CLIENT_ID
        self.token_requests: list[dict] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def id_token(self, nonce: str | None) -> str:
        now = int(time.time())
        claims = {"iss": self.url, "aud": self.audience, "iat": now, "exp": now + 300, **self.person}
        if nonce:
            claims["nonce"] = nonce
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": KEY_ID})


class ProviderHandler(BaseHTTPRequestHandler):
    server: Provider

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _json(self, data: dict, status: int = 200) -> None:
        body = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        base = self.server.url
        if parts.path == "/.well-known/openid-configuration":
            self._json(
                {
                    "issuer": base,
                    "authorization_endpoint": f"{base}/authorize",
                    "token_endpoint": f"{base}/token",
                    "userinfo_endpoint": f"{base}/userinfo",
                    "jwks_uri": f"{base}/jwks",
                    "response_types_supported": ["code"],
                    "subject_types_supported": ["public"],
                    "id_token_signing_alg_values_supported": ["RS256"],
                    "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
                    "code_challenge_methods_supported": ["S256"],
                }
            )
        elif parts.path == "/authorize":
            # The person has signed in at the provider and agreed: back to the client with a code.
            assert query["client_id"] == CLIENT_ID and query["response_type"] == "code"
            code = secrets.token_urlsafe(16)
            self.server.codes[code] = query
            self.send_response(302)
            self.send_header(
                "Location", f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query['state']})}"
            )
            self.end_headers()
        elif parts.path == "/userinfo":
            if self.headers.get("Authorization") != "Bearer access-for-" + self.server.person["sub"]:
                self._json({"error": "invalid_token"}, 401)
            else:
                self._json(self.server.person)
        elif parts.path == "/jwks":
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.server.key.public_key()))
            self._json({"keys": [{**jwk, "kid": KEY_ID, "alg": "RS256", "use": "sig"}]})
        else:
            self._json({"error": "not found"}, 404)

    def do_POST(self) -> None:
        if urlsplit(self.path).path != "/token":
            self._json({"error": "not found"}, 404)
            return
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode()).items()}
        self.server.token_requests.append(form)
        asked = self.server.codes.pop(form.get("code", ""), None)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(form.get("code_verifier", "").encode()).digest()).rstrip(
            b"="
        )
        if (
            asked is None
            or form.get("client_secret") != CLIENT_SECRET
            or form.get("redirect_uri") != asked["redirect_uri"]
            or challenge.decode() != asked.get("code_challenge")
        ):
            self._json({"error": "invalid_grant"}, 400)
            return
        self._json(
            {
                "access_token": "access-for-" + self.server.person["sub"],
                "token_type": "Bearer",
                "expires_in": 300,
                "id_token": self.server.id_token(asked.get("nonce")),
            }
        )


@pytest.fixture
def provider() -> Iterator[Provider]:
    server = Provider()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def oidc_settings(settings, provider: Provider) -> dict:
    """SOCIALACCOUNT_PROVIDERS exactly as ccweb/settings.py builds it from the OIDC_* environment."""
    code = "import json; from django.conf import settings; print(json.dumps(settings.SOCIALACCOUNT_PROVIDERS))"
    built = manage(
        "shell",
        "-c",
        code,
        OIDC_SERVER_URL=provider.url,
        OIDC_CLIENT_ID=CLIENT_ID,
        OIDC_CLIENT_SECRET=CLIENT_SECRET,
        OIDC_NAME="Company SSO",
    )
    assert built.returncode == 0, built.stderr
    settings.SOCIALACCOUNT_PROVIDERS = json.loads(built.stdout.strip().splitlines()[-1])
    return settings.SOCIALACCOUNT_PROVIDERS


def sign_in(client, provider: Provider):
    """Press the login page's button, let the provider answer, and follow it back to ccweb."""
    login_page = client.get(reverse("account_login")).content.decode()
    assert '<button type="submit" class="secondary">Log in with Company SSO</button>' in login_page
    start = client.post(reverse("openid_connect_login", kwargs={"provider_id": "sso"}) + "?process=login")
    assert start.status_code == 302 and start["Location"].startswith(f"{provider.url}/authorize?")
    at_provider = requests.get(start["Location"], allow_redirects=False, timeout=10)
    back = urlsplit(at_provider.headers["Location"])
    assert back.path == reverse("openid_connect_callback", kwargs={"provider_id": "sso"})
    return client.get(f"{back.path}?{back.query}")


def test_the_settings_make_one_provider_and_nothing_without_them(oidc_settings, provider):
    [app] = oidc_settings["openid_connect"]["APPS"]
    assert app == {
        "provider_id": "sso",
        "name": "Company SSO",
        "client_id": CLIENT_ID,
        "secret": CLIENT_SECRET,
        "settings": {"server_url": provider.url},
    }
    assert oidc_settings["openid_connect"]["OAUTH_PKCE_ENABLED"] is True
    unset = manage("shell", "-c", "from django.conf import settings; print(settings.SOCIALACCOUNT_PROVIDERS)")
    assert "'APPS': []" in unset.stdout


def test_someone_new_signs_in_through_the_provider_and_gets_an_account(client, oidc_settings, provider):
    response = sign_in(client, provider)
    assert response.status_code == 302 and response["Location"] == reverse("conversions:dashboard")
    user = User.objects.get(email="erin@example.com")
    assert user.username == "erin" and not user.has_usable_password()
    assert EmailAddress.objects.filter(
        user=user, email="erin@example.com", verified=True
    ).exists()  # the provider vouched
    assert logged_in_as(client) == "erin"
    [token_request] = provider.token_requests
    assert token_request["code_verifier"]  # PKCE

    client.logout()
    sign_in(client, provider)  # the same person again: the same account
    assert User.objects.count() == 1 and logged_in_as(client) == "erin"


def test_an_address_the_provider_does_not_vouch_for_is_verified_by_link_first(
    client, oidc_settings, provider, mailoutbox
):
    provider.person = {**provider.person, "email_verified": False}
    response = sign_in(client, provider)
    assert response["Location"] == reverse("account_email_verification_sent")
    assert logged_in_as(client) is None
    assert mailoutbox[0].to == ["erin@example.com"]


def test_an_id_token_for_another_client_signs_nobody_in(client, oidc_settings, provider):
    provider.audience = "someone-else"
    response = sign_in(client, provider)
    assert response.status_code == 401
    assert "The sign-in through your organisation's provider did not work" in response.content.decode()
    assert not User.objects.exists() and logged_in_as(client) is None


def test_invite_only_sign_up_holds_for_the_provider_too(client, settings, oidc_settings, provider):
    settings.ACCOUNT_SIGNUP = "invite"
    assert "Accounts here are made by invitation" in sign_in(client, provider).content.decode()
    assert not User.objects.exists()

    team = Team.objects.create(name="Design")
    token = invitation(team, "erin@example.com")
    client.get(reverse("conversions:invitation", args=[token]))
    assert sign_in(client, provider)["Location"] == reverse("conversions:dashboard")
    assert logged_in_as(client) == "erin"
    assert TeamInvitation.objects.get().status == "pending"  # accepting is still the invited person's choice
