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
