app_name = "conversions"
urlpatterns: list = []
