from django.urls import path

from conversions import views

app_name = "conversions"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("jobs/rows/", views.dashboard_rows, name="dashboard_rows"),
    path("convert/", views.convert, name="convert"),
    path("jobs/<uuid:uuid>/", views.job_detail, name="job_detail"),
    path("jobs/<uuid:uuid>/upload/", views.job_upload, name="job_upload"),
    path("jobs/<uuid:uuid>/status/", views.job_status, name="job_status"),
    path("files/<uuid:uuid>/", views.file_download, name="file_download"),
    path("webhooks/cloudconvert/", views.webhook, name="webhook"),
]
