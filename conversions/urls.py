from django.urls import path

from conversions import views

app_name = "conversions"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("jobs/rows/", views.dashboard_rows, name="dashboard_rows"),
    path("convert/", views.convert, name="convert"),
    path("presets/<uuid:uuid>/delete/", views.preset_delete, name="preset_delete"),
    path("jobs/<uuid:uuid>/", views.job_detail, name="job_detail"),
    path("jobs/<uuid:uuid>/upload/", views.job_upload, name="job_upload"),
    path("jobs/<uuid:uuid>/status/", views.job_status, name="job_status"),
    path("jobs/<uuid:uuid>/cancel/", views.job_cancel, name="job_cancel"),
    path("jobs/<uuid:uuid>/retry/", views.job_retry, name="job_retry"),
    path("jobs/<uuid:uuid>/share/", views.job_share, name="job_share"),
    path("jobs/<uuid:uuid>/delete/", views.job_delete, name="job_delete"),
    path("jobs/<uuid:uuid>/zip/", views.job_zip, name="job_zip"),
    path("files/<uuid:uuid>/", views.file_download, name="file_download"),
    path("files/<uuid:uuid>/thumbnail/", views.file_thumbnail, name="file_thumbnail"),
    path("webhooks/cloudconvert/", views.webhook, name="webhook"),
]
