"""The Content-Security-Policy of every response (django-csp), with the API's upload hosts.

The policy itself is in settings (CONTENT_SECURITY_POLICY). Browsers send files straight to the
API's upload URL, by XHR and, without JavaScript, by a plain form, so connect-src and
form-action must name that host. It follows the API configured now (api_config() reads settings
at call time, as the client does), not the one configured when settings were loaded."""

from csp.middleware import CSPMiddleware, PolicyParts
from django.http import HttpRequest, HttpResponseBase

from conversions.cloudconvert.client import upload_origins


class ContentSecurityPolicyMiddleware(CSPMiddleware):
    def get_policy_parts(
        self, request: HttpRequest, response: HttpResponseBase, report_only: bool = False
    ) -> PolicyParts:
        parts = super().get_policy_parts(request, response, report_only)
        origins = upload_origins()
        update = dict(parts.update or {})
        for directive in ("connect-src", "form-action"):
            update[directive] = [*update.get(directive, ()), *origins]
        parts.update = update
        return parts
