# The MLflow tracking server infra/ runs on Cloud Run: PostgreSQL backend store (psycopg2), artefacts
# proxied to Cloud Storage (google-cloud-storage). The version matches the project's mlflow pin.
#   buildah bud -f docker/mlflow.Dockerfile -t gatrec-mlflow:3.17.2 .
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1
RUN pip install "mlflow==3.17.2" "psycopg2-binary>=2.9" "google-cloud-storage>=2.18" \
 && useradd --create-home --uid 1000 mlflow
USER mlflow
EXPOSE 5000
# infra/main.tf gives the arguments (backend store, artefact destination).
ENTRYPOINT []
CMD ["mlflow", "server", "--host", "0.0.0.0", "--port", "5000"]
