# The registry's one image: web (gunicorn), Celery worker and beat, and the migrate job.
# docker-compose.yml shows how the services run it.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONPATH=/app \
    DATA_DIR=/app/var \
    WEB_CONCURRENCY=3

# gettext compiles the translations at build time; fonts-nanum gives PDF statements and invoices their Korean
# glyphs (PDF_FONT_PATH's default, /usr/share/fonts/truetype/nanum/NanumGothic.ttf, is its file); Chromaprint's
# fpcalc (libchromaprint-tools) extracts the features of an audio work's Audio-Code.
RUN apt-get update \
    && apt-get install -y --no-install-recommends gettext fonts-nanum libchromaprint-tools \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# Dependencies in their own layer, read from pyproject.toml, so a code change does not reinstall them.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# The project runs from /app (PYTHONPATH), a single copy, so every process finds the compiled
# translations and the same BASE_DIR.
COPY . .

# Settings refuse to load without SECRET_KEY (and the receipt and payout keys) outside DEBUG. These dummy keys exist only for these
# build steps and never reaches a running container; REDIS_URL only keeps the settings from creating
# a filesystem broker folder in the image. Static files go to /app/var/static (STATIC_ROOT = DATA_DIR/static).
RUN export SECRET_KEY=build-only-not-a-secret REDIS_URL=redis://build-only:6379/0 \
        RECEIPT_SIGNING_KEY=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= \
        PAYOUT_DATA_KEYS=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= \
    && if [ -n "$(find . -type d -name locale -print -quit)" ]; then python manage.py compilemessages -v 0; fi \
    && python manage.py collectstatic --noinput -v 0

# Run as an unprivileged user that owns only DATA_DIR; media/ is where compose mounts the shared volume.
RUN groupadd --system --gid 10001 registry \
    && useradd --system --uid 10001 --gid registry --home-dir /app --no-create-home registry \
    && mkdir -p /app/var/media \
    && chown -R registry:registry /app/var
USER registry

EXPOSE 8000
CMD ["gunicorn", "config.wsgi", "--bind", "0.0.0.0:8000", "--access-logfile", "-"]
