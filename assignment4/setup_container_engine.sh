#!/usr/bin/env bash
# Set up a container engine that really runs assignment4/test.py::test_docker on this kind of machine (Debian 12,
# root, no Docker daemon, no reachable image registry). Idempotent: a second run checks and returns in ~1 s.
#
#   bash assignment4/setup_container_engine.sh          # what .ci/run calls
#
# What it does (../shared/notes/containers.md records why each step is needed):
#   1. apt-get install podman runc debootstrap uidmap slirp4netns fuse-overlayfs       (~30 s, skipped when present)
#   2. containers.conf: runc (crun 1.8 fails on hybrid cgroups), nofile ulimit root can grant, host network
#   3. a local Python base image, since nothing can be pulled: debootstrap a minimal Debian bookworm with python3,
#      venv, pip and CA certificates (this machine's own CA certificates copied in, so pip works through the proxy),
#      then `podman import` it as localhost/python-base:bookworm                     (~60 s, skipped when present)
#
# A machine that already has a working `docker` engine needs none of this: the script says so and exits 0.
# Variables: AML_BASE_IMAGE (default localhost/python-base:bookworm), AML_FORCE_PODMAN=1 (set up podman even when
# docker works), CONTAINERS_CONF (where the config goes; default /etc/containers/containers.conf).
set -euo pipefail

BASE_IMAGE="${AML_BASE_IMAGE:-localhost/python-base:bookworm}"
CONF="${CONTAINERS_CONF:-/etc/containers/containers.conf}"
MARKER="# written by aml-workspace assignment4/setup_container_engine.sh"
PACKAGES=(podman runc debootstrap uidmap slirp4netns fuse-overlayfs)
SECONDS=0

say() { echo "[container-engine] $*"; }

if [ "${AML_FORCE_PODMAN:-0}" != 1 ] && command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
  say "a working docker engine is present: nothing to set up"
  exit 0
fi

if [ "$(id -u)" != 0 ]; then
  if command -v podman >/dev/null 2>&1; then
    say "not root: using the podman that is installed, setting nothing up"
    exit 0
  fi
  say "not root and no container engine: cannot install one here (test_docker will skip, and fail under CI=true)"
  exit 1
fi

# 1. packages
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq -o DPkg::Lock::Timeout=300
  apt-get install -y -qq -o DPkg::Lock::Timeout=300 "${missing[@]}" >/dev/null
else
  say "packages present: ${PACKAGES[*]}"
fi

# 2. containers.conf (ours is rewritten each run, someone else's is left alone)
if [ -f "$CONF" ] && ! grep -qF "$MARKER" "$CONF"; then
  say "$CONF exists and was not written by this script: leaving it as it is"
else
  mkdir -p "$(dirname "$CONF")"
  cat >"$CONF" <<EOF
$MARKER
# root here cannot raise RLIMIT_NOFILE past 20000 (podman asks for 1048576 by default);
# host networking: the default bridge network would rewrite the machine's firewall tables.
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
netns = "host"

[engine]
# Debian's crun 1.8.1 fails on this machine's hybrid cgroups; runc 1.1.5 works.
runtime = "runc"
EOF
  say "wrote $CONF"
fi
export CONTAINERS_CONF="$CONF"

# 3. the local base image
if podman image exists "$BASE_IMAGE"; then
  say "base image $BASE_IMAGE present"
else
  mirror=$(grep -hoE '^(URIs:|deb) +[a-z]+://[^ ]+' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources \
    /etc/apt/sources.list.d/*.list 2>/dev/null | awk '{print $2}' | grep -E '/debian/?$' | head -1 || true)
  mirror="${mirror:-http://deb.debian.org/debian}"
  rootfs=$(mktemp -d /var/tmp/aml-rootfs.XXXXXX)
  trap 'rm -rf "$rootfs"' EXIT
  say "debootstrap bookworm from $mirror (about a minute)"
  debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
    bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 || { tail -20 "$rootfs.log"; exit 1; }
  rm -f "$rootfs.log"
  # this machine's HTTPS goes through a re-signing proxy: trust its CA inside the image too
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
  fi
  chroot "$rootfs" update-ca-certificates >/dev/null 2>&1
  chroot "$rootfs" apt-get clean
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/*
  say "podman import -> $BASE_IMAGE"
  tar -C "$rootfs" -c . | podman import -q --change 'CMD ["/usr/bin/python3"]' - "$BASE_IMAGE" >/dev/null
fi

podman run --rm --network=host "$BASE_IMAGE" python3 -c "import ssl, venv; print('base image python ok')" \
  | sed 's/^/[container-engine] /'
say "ready in ${SECONDS}s: podman $(podman --version | awk '{print $3}'), runtime runc, base image $BASE_IMAGE"
