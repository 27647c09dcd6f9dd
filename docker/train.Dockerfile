# The image Vertex AI runs for `gatrec cloud submit`: Python 3.11, torch, gatrec and the repository's
# MLproject at the working folder, so a job's command `mlflow run . -e ENTRY --env-manager local -P …` is
# the same one a user runs locally.
#
# GPU (default; CUDA runtime for the L4's driver, which Vertex mounts):
#   buildah bud -f docker/train.Dockerfile -t gatrec-train:latest .
# CPU variant (Debian's Python 3.11, CPU-only torch wheels):
#   buildah bud -f docker/train.Dockerfile --build-arg BASE=debian:bookworm-slim \
#     --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu -t gatrec-train:cpu .
# Then: gatrec cloud push --image gatrec-train:latest --to train:latest
ARG BASE=nvidia/cuda:12.8.1-cudnn-runtime-ubuntu22.04
FROM ${BASE}

# Empty: PyPI's torch wheels (CUDA 12 builds). A CPU image points this at PyTorch's CPU index.
ARG TORCH_INDEX_URL=
ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GATREC_NO_MLFLOW= \
    PATH=/opt/venv/bin:$PATH

# Ubuntu 22.04 (the CUDA base) and Debian 12 both package Python 3.11.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3.11 python3.11-venv ca-certificates git libgomp1 \
 && rm -rf /var/lib/apt/lists/* \
 && python3.11 -m venv /opt/venv \
 && pip install --upgrade pip

# torch first, from the chosen index, so the layer is reused while gatrec changes.
RUN pip install ${TORCH_INDEX_URL:+--index-url ${TORCH_INDEX_URL}} --extra-index-url https://pypi.org/simple \
        torch==2.14.1 torchvision==0.29.1

WORKDIR /app
COPY pyproject.toml README.md MLproject conda.yaml ./
COPY gatrec ./gatrec
RUN pip install . && python -c "import gatrec, torch, mlflow; print('gatrec', gatrec.__version__, 'torch', torch.__version__)"

# Jobs run as an unprivileged user; MLflow and caches write under its home.
RUN useradd --create-home --uid 1000 gatrec && chown -R gatrec /app
USER gatrec
ENV HOME=/home/gatrec GATREC_GS_CACHE=/home/gatrec/.cache/gatrec/gs

# Vertex overrides the command with the job's `mlflow run …`; run alone, the image lists the entry points.
ENTRYPOINT []
CMD ["python", "-m", "gatrec", "--help"]
