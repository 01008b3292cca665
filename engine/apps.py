from django.apps import AppConfig


class EngineConfig(AppConfig):
    name = "engine"
    verbose_name = "Engine (CloudConvert API v2)"

    def ready(self) -> None:
        # Every process that queues tasks (web, workers, commands) rings the workers' doorbell.
        from engine import wakeup  # noqa: F401
