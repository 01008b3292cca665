"""Settings come from the environment; production refuses to start without its secrets."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    # The process's own settings stay out, and so does the browser tests' DJANGO_ALLOW_ASYNC_UNSAFE.
    prefixes = ("CCWEB_", "ENGINE_", "CLOUDCONVERT_", "SECRET_KEY", "DJANGO_ALLOW_ASYNC_UNSAFE")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env={**clean, **env}, capture_output=True, text=True, timeout=60
    )


PRODUCTION = {
    "CCWEB_MODE": "production",
    "SECRET_KEY": "x" * 60 + "-a-long-and-random-enough-secret-key-for-the-deploy-check",
    "ENGINE_API_KEY": "engine-key",
    "ENGINE_WEBHOOK_SECRET": "engine-secret",
    "ALLOWED_HOSTS": "ccweb.example.com",
}


def test_the_production_deploy_check_is_clean():
    result = manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stderr


def test_production_refuses_to_start_without_its_secrets():
    for missing in ("SECRET_KEY", "ENGINE_API_KEY", "ENGINE_WEBHOOK_SECRET"):
        env = {k: v for k, v in PRODUCTION.items() if k != missing}
        result = manage("check", **env)
        assert result.returncode != 0
        assert f"{missing} must be set when CCWEB_MODE=production." in result.stderr


def test_a_cloudconvert_key_needs_its_webhook_secret_in_production():
    result = manage("check", **PRODUCTION, CLOUDCONVERT_API_KEY="a-key")
    assert "CLOUDCONVERT_WEBHOOK_SECRET must be set with CLOUDCONVERT_API_KEY." in result.stderr


def test_the_example_environment_documents_every_setting_read():
    """Every env.*("NAME") in settings.py appears in .env.example."""
    names = set(re.findall(r'env(?:\.\w+)?\(\s*"([A-Z0-9_]+)"', (ROOT / "ccweb/settings.py").read_text()))
    names |= set(re.findall(r'_required_in_production\("([A-Z0-9_]+)"', (ROOT / "ccweb/settings.py").read_text()))
    example = (ROOT / ".env.example").read_text()
    assert names, "no setting found"
    assert sorted(n for n in names if n not in example) == []


def production_policy(**env: str) -> dict[str, list[str]]:
    """The Content-Security-Policy header of a production response, directive by directive."""
    code = (
        "from django.test import Client; "
        "r = Client().get('/', secure=True, HTTP_HOST='ccweb.example.com'); "
        "print(r.status_code, r.headers.get('Content-Security-Policy'))"
    )
    result = manage("shell", "-c", code, **{**PRODUCTION, **env})
    assert result.returncode == 0, result.stderr
    status, header = result.stdout.strip().splitlines()[-1].split(" ", 1)
    assert status == "302"  # to the login page: the header is on every response
    return {name: values for name, *values in (part.split() for part in header.split(";"))}


def test_production_sends_a_content_security_policy_without_unsafe_inline():
    policy = production_policy(ENGINE_URL="https://engine.example.com/engine")
    assert policy["default-src"] == policy["script-src"] == policy["style-src"] == policy["img-src"] == ["'self'"]
    assert policy["object-src"] == policy["base-uri"] == policy["frame-ancestors"] == ["'none'"]
    # The browser uploads straight to the engine, by XHR or by a plain form.
    assert policy["connect-src"] == policy["form-action"] == ["'self'", "https://engine.example.com"]
    assert not [values for values in policy.values() if "'unsafe-inline'" in values or "'unsafe-eval'" in values]


def test_with_a_cloudconvert_key_the_policy_lets_files_go_to_its_storage():
    policy = production_policy(CLOUDCONVERT_API_KEY="a-key", CLOUDCONVERT_WEBHOOK_SECRET="a-secret")
    assert policy["connect-src"] == policy["form-action"] == [
        "'self'",
        "https://api.cloudconvert.com",
        "https://storage.cloudconvert.com",
        "https://*.storage.cloudconvert.com",
    ]
