"""The engine's routes: the API v2 under v2/ and sync/v2/, and the signed storage URLs."""

from django.urls import include, path, re_path

from engine.auth import endpoint, unknown_route
from engine.views import account, jobs, storage, sync, tasks

app_name = "engine"

# The routes every host serves; the sync host overrides the ones that block.
api_v2 = [
    path("jobs", endpoint(GET=jobs.job_list, POST=jobs.job_create), name="jobs"),
    path("jobs/<str:job_id>", endpoint(GET=jobs.job_show, DELETE=jobs.job_delete), name="job"),
    # The pre-2022 blocking endpoints, kept for old SDK versions.
    path("jobs/<str:job_id>/wait", endpoint(GET=sync.job_wait), name="job-wait"),
    path("tasks", endpoint(GET=tasks.task_list), name="tasks"),
    path("tasks/<str:task_id>", endpoint(GET=tasks.task_show, DELETE=tasks.task_delete), name="task"),
    path("tasks/<str:task_id>/wait", endpoint(GET=sync.task_wait), name="task-wait"),
    path("tasks/<str:task_id>/cancel", endpoint(POST=tasks.task_cancel), name="task-cancel"),
    path("tasks/<str:task_id>/retry", endpoint(POST=tasks.task_retry), name="task-retry"),
    path("users/me", endpoint(GET=account.user_me), name="user-me"),
    path("users/me/webhooks", endpoint(GET=account.webhook_list), name="webhooks-list"),
    path("webhooks", endpoint(POST=account.webhook_create), name="webhooks"),
    path("webhooks/<str:webhook_id>", endpoint(DELETE=account.webhook_delete), name="webhook"),
    path("convert/formats", endpoint(public=True, GET=account.formats), name="formats"),
    path("operations", endpoint(public=True, GET=account.operations), name="operations"),
    # Standalone task creation: POST /v2/import/upload, /v2/convert, /v2/export/url, ...
    re_path(r"^(?P<operation>[a-z0-9-]+(?:/[a-z0-9-]+)*)$", tasks.operation_route, name="task-create"),
]

# A URL resolves before its method is looked at, so these keep the other methods of their path.
sync_v2 = [
    path("jobs", endpoint(GET=jobs.job_list, POST=sync.job_create_wait), name="sync-jobs"),
    path("jobs/<str:job_id>", endpoint(GET=sync.job_wait, DELETE=jobs.job_delete), name="sync-job"),
    path("tasks/<str:task_id>", endpoint(GET=sync.task_wait, DELETE=tasks.task_delete), name="sync-task"),
]

urlpatterns = [
    path("v2/", include(api_v2)),
    # Everything the sync host does not block on, it serves like the async host.
    path("sync/v2/", include([*sync_v2, *api_v2])),
    path("storage/upload/<str:task_id>", storage.upload, name="upload"),
    path("storage/files/<str:file_id>/<path:filename>", storage.download, name="download"),
    # Last: a JSON 404 for anything else under the engine, never Django's HTML page.
    re_path(r"^.*$", unknown_route),
]
