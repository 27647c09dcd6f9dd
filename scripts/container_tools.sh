#!/usr/bin/env bash
# The container build needs buildah (builds and runs OCI images without a Docker daemon) and debootstrap
# (makes a Debian bookworm root filesystem for a locally built base image). Install Debian's packages when
# they are missing and we may; exit 1 (and say why) when they are missing and we may not.
set -euo pipefail
missing=()
command -v buildah >/dev/null || missing+=(buildah)
command -v debootstrap >/dev/null || missing+=(debootstrap)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing Debian packages: ${missing[*]}" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "missing ${missing[*]} (install them with apt-get as root)" >&2
  exit 1
fi
