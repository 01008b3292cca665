from django.contrib.admin.apps import AdminConfig as DjangoAdminConfig


class AdminConfig(DjangoAdminConfig):
    """django.contrib.admin with ccweb's site (ccweb/admin.py) as admin.site."""

    default_site = "ccweb.admin.AdminSite"
