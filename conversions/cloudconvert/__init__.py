"""The conversion API as ccweb speaks it: client.py (one method per endpoint, timeouts, retries),
webhooks.py (signatures of incoming deliveries), errors.py (what callers catch).

Nothing outside this package imports requests to talk to CloudConvert or the engine."""
