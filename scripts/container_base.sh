#!/usr/bin/env bash
# Build a local Debian bookworm base image (python3.11) for the Bento container, with debootstrap from
# Debian's own packages, and import it into buildah's store as $BASE (default localhost/gatrec-base:bookworm).
# The public default base (bentofile.yaml: python:3.11-slim) needs a registry these machines cannot reach;
# this one is the same Debian release and Python. The host's extra CA certificates (a TLS-intercepting
# egress proxy, where there is one) are added so that uv inside the build can reach PyPI.
# Usage: scripts/container_base.sh [BASE]     (idempotent: an existing image is kept)
set -euo pipefail
BASE=${1:-localhost/gatrec-base:bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
here=$(cd "$(dirname "$0")" && pwd)
bash "$here/container_tools.sh"
if buildah images --quiet "$BASE" >/dev/null 2>&1; then
  echo "base image $BASE present"; exit 0
fi
root=$(mktemp -d /var/tmp/gatrec-rootfs.XXXXXX)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase --include=python3,ca-certificates,passwd bookworm "$root" "$MIRROR"
shopt -s nullglob
extra=(/usr/local/share/ca-certificates/*.crt)
if [ ${#extra[@]} -gt 0 ]; then
  cp "${extra[@]}" "$root/usr/local/share/ca-certificates/"
  chroot "$root" update-ca-certificates >/dev/null
fi
# uv is what BentoML's Dockerfile uses to make the venv and install the Bento's packages; without it the
# Dockerfile would pip-install it, and Debian's python3 refuses pip installs outside a venv (PEP 668).
uv=$(command -v uv || echo "$here/../.venv/bin/uv")
install -m 0755 "$uv" "$root/usr/local/bin/uv"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
ctr=$(buildah from scratch)
buildah copy "$ctr" "$root" / >/dev/null
buildah config --env LANG=C.UTF-8 --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
  --env UV_NATIVE_TLS=1 --cmd /bin/bash "$ctr"
buildah commit --rm "$ctr" "$BASE"
buildah images "$BASE"
