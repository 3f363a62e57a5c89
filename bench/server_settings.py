"""The shipped settings with one more URL, for bench/lookup.py --wrk: a plain JSON view as the HTTP ceiling.

gunicorn runs with ``DJANGO_SETTINGS_MODULE=bench.server_settings``: everything else (middleware, cache,
database, the API's views) is config/settings.py's.
"""

from config.settings import *  # noqa: F403  (the shipped settings, unchanged)

ROOT_URLCONF = "bench.server_urls"
