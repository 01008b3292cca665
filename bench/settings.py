"""ccweb's settings with the benchmarks' URLconf (bench/urls.py): the same server, two more views."""

from ccweb.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
