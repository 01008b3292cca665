from django.urls import path

from conversions import views, views_accounts, views_activity, views_sharing, views_teams

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
    path("account/", views_accounts.account, name="account"),
    # Teams run by their users.
    path("teams/", views_teams.team_list, name="team_list"),
    path("teams/<uuid:uuid>/", views_teams.team_detail, name="team_detail"),
    path("teams/<uuid:uuid>/members/", views_teams.team_members, name="team_members"),
    path("teams/<uuid:uuid>/invite/", views_teams.team_invite, name="team_invite"),
    path(
        "teams/<uuid:uuid>/invitations/<uuid:invitation>/revoke/", views_teams.invitation_revoke, name="invitation_revoke"
    ),
    path("teams/<uuid:uuid>/members/<uuid:member>/role/", views_teams.member_role, name="member_role"),
    path("teams/<uuid:uuid>/members/<uuid:member>/remove/", views_teams.member_remove, name="member_remove"),
    path("teams/<uuid:uuid>/leave/", views_teams.team_leave, name="team_leave"),
    path("teams/<uuid:uuid>/delete/", views_teams.team_delete, name="team_delete"),
    path("teams/<uuid:uuid>/jobs/<uuid:job>/delete/", views_teams.team_job_delete, name="team_job_delete"),
    # Activity logs and retention (views_activity).
    path("teams/<uuid:uuid>/activity/", views_activity.team_activity, name="team_activity"),
    path("activity/", views_activity.activity_list, name="activity"),
    path("invitations/<str:token>/", views_teams.invitation, name="invitation"),
    path("invitations/<str:token>/accept/", views_teams.invitation_accept, name="invitation_accept"),
    path("invitations/<str:token>/decline/", views_teams.invitation_decline, name="invitation_decline"),
    # Share links: made on the job page, opened by anyone holding one.
    path("jobs/<uuid:uuid>/links/", views_sharing.share_link_create, name="share_link_create"),
    path("links/<uuid:uuid>/revoke/", views_sharing.share_link_revoke, name="share_link_revoke"),
    path("s/<str:token>/", views_sharing.share_link_public, name="share_link_public"),
    path("s/<str:token>/download/", views_sharing.share_link_download, name="share_link_download"),
]
