# One image for the Python parts: server, gateway and simulator (`crp ...`).
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# DejaVu Sans: PDF invoices print every name and sign (the core PDF fonts only speak Latin-1).
RUN apt-get update && apt-get install -y --no-install-recommends fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY pyproject.toml README.md ./
COPY crp_common ./crp_common
COPY crp_cli ./crp_cli
COPY firmware_sim ./firmware_sim
COPY gateway ./gateway
COPY server ./server
RUN pip install . && rm -rf /src

COPY deploy/healthcheck /opt/crp/healthcheck

RUN useradd --system --uid 10001 --home-dir /var/lib/crp --create-home crp
USER crp
# Named volumes mount here; created as crp so a fresh volume is writable by the service.
RUN mkdir -p /var/lib/crp/data
WORKDIR /var/lib/crp

ENTRYPOINT ["crp"]
CMD ["--help"]
