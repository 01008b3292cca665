"""Database backends: Django's own, each with what ccweb changes in it explained in its base.py;
ccweb/settings.py names them as DATABASES' ENGINE."""
