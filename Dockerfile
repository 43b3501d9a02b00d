# One image for every service of the harness: the fakes (avito-harness serve avito|n8n|stt),
# the gateway (avito-gateway) and the acceptance runner (avito-harness run).
FROM python:3.11-slim AS build
WORKDIR /src
RUN python -m venv /venv
COPY pyproject.toml README.md ./
COPY simulator simulator
COPY gateway gateway
COPY contracts contracts
COPY features features
COPY workflows workflows
# the two distributions (the gateway alone has its own image: gateway/Dockerfile); contracts, features and the
# step library ship inside the harness's package
RUN /venv/bin/pip install --no-cache-dir --upgrade pip && /venv/bin/pip install --no-cache-dir ./gateway .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --create-home harness
COPY --from=build /venv /venv
WORKDIR /app
ENV PATH=/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    DATA_DIR=/tmp/gateway-data \
    SIM_HOST=0.0.0.0
USER harness
EXPOSE 8080 5678 8090 8765
CMD ["avito-harness", "--help"]
