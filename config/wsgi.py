import gc
import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()

# Load the URL configuration, and with it every view, now rather than on the first request; then take all that
# was loaded out of the garbage collector's reach. It never becomes garbage, and a batch lookup allocates enough
# objects to trigger full collections that walked all of it: about 6% of a 1,000-item lookup's time.
get_resolver().url_patterns  # noqa: B018
gc.freeze()
