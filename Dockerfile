# Tocsin: API and worker in one image. Point TOCSIN_DATABASE_URL at PostgreSQL 14 or newer;
# without it the container starts the embedded PostgreSQL in /data.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TOCSIN_HOST=0.0.0.0 \
    TOCSIN_PORT=8080 \
    TOCSIN_DATA_DIR=/data \
    TOCSIN_LOG_FORMAT=json

WORKDIR /srv/tocsin
COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY migrations ./migrations
RUN pip install --no-cache-dir . && useradd --system --home /data tocsin \
    && mkdir -p /data && chown tocsin /data

USER tocsin
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request, sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz').status != 200)"
ENTRYPOINT ["tocsin"]
CMD ["serve"]
