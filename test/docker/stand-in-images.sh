#!/usr/bin/env bash
# Local stand-ins for the two public images that the project's Dockerfile and docker-compose.yml name,
# `node:20-bookworm-slim` and `redis:7`, built from Debian packages with debootstrap, for machines that
# reach the Debian and npm mirrors but no image registry. Tagged with exactly those names, so
# `docker compose build` / `up` use the project's files unchanged, as a user would.
#
# What they provide is what the official images provide and the project's files rely on:
#   node:20-bookworm-slim  Node 20 and npm (Debian trixie's nodejs/npm), user `node` uid/gid 1000
#                          with /home/node, CMD ["node"]
#   redis:7                redis-server and redis-cli (Debian trixie's Redis 8 speaks the Redis 7
#                          protocol and options the files use), WORKDIR /data (a VOLUME, owned by
#                          `redis`), runs as `redis`, CMD ["redis-server"]
# Where NODE_EXTRA_CA_CERTS is set on the host, the node stand-in carries that file and sets the
# variable, so `npm ci` inside `docker build` trusts the same registry path as the host.
#
# Built once; reused while the inputs (this script, the suite, the mirror, the CA file) are unchanged:
# each image carries their hash in the label `numgrad.stand-in.inputs`. FORCE=1 rebuilds.
# Needs root (debootstrap, chroot) and a running dockerd. Prints one line per image.
set -euo pipefail

SUITE=${STAND_IN_SUITE:-trixie}
MIRROR=${STAND_IN_MIRROR:-http://deb.debian.org/debian}
NODE_TAG=node:20-bookworm-slim
REDIS_TAG=redis:7
CA_FILE=${NODE_EXTRA_CA_CERTS:-}
CA_IN_IMAGE=/usr/local/share/ca-certificates-extra/node-extra-ca.crt

if [ -n "$CA_FILE" ] && [ ! -r "$CA_FILE" ]; then
  echo "stand-in-images: NODE_EXTRA_CA_CERTS=$CA_FILE is not a readable file; unset it or fix the path" >&2
  exit 2
fi

inputs_hash() {
  {
    cat "$0"
    echo "$SUITE $MIRROR"
    if [ -n "$CA_FILE" ]; then cat "$CA_FILE"; fi
  } | sha256sum | cut -c1-16
}
HASH=$(inputs_hash)

label_of() { docker image inspect --format '{{ index .Config.Labels "numgrad.stand-in.inputs" }}' "$1" 2>/dev/null || true; }

if [ "${FORCE:-0}" != 1 ] && [ "$(label_of "$NODE_TAG")" = "$HASH" ] && [ "$(label_of "$REDIS_TAG")" = "$HASH" ]; then
  echo "stand-in-images: $NODE_TAG and $REDIS_TAG are up to date (inputs $HASH)"
  exit 0
fi

for cmd in debootstrap docker chroot; do
  command -v "$cmd" >/dev/null || { echo "stand-in-images: $cmd is missing (apt-get install -y debootstrap docker.io)" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "stand-in-images: debootstrap and chroot need root; run as root" >&2; exit 2; }

WORK=$(mktemp -d /var/tmp/numgrad-stand-in.XXXXXX)
cleanup() {
  # A chroot's mounts must go before its tree does.
  for m in "$WORK"/*/proc; do umount "$m" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

started=$(date +%s)
echo "stand-in-images: debootstrap $SUITE from $MIRROR (minbase) ..."
debootstrap --variant=minbase --include=ca-certificates "$SUITE" "$WORK/base" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 || {
  tail -20 "$WORK/debootstrap.log" >&2; echo "stand-in-images: debootstrap failed (log above)" >&2; exit 1; }

# Installs packages into a copy of the base root; `apt-get -f install` finishes what a first pass
# leaves unconfigured (npm's dependency chain, in some debootstrap runs).
make_root() {
  local name=$1; shift
  local root="$WORK/$name"
  cp -a "$WORK/base" "$root"
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  mount -t proc proc "$root/proc"
  local apt=(env DEBIAN_FRONTEND=noninteractive LC_ALL=C chroot "$root" apt-get -y -q -o Dpkg::Use-Pty=0)
  "${apt[@]}" update >"$WORK/$name-apt.log" 2>&1
  "${apt[@]}" install --no-install-recommends "$@" >>"$WORK/$name-apt.log" 2>&1 || true
  "${apt[@]}" -f install >>"$WORK/$name-apt.log" 2>&1 || { tail -20 "$WORK/$name-apt.log" >&2; exit 1; }
  umount "$root/proc"
}

# What the images do not need at run time: package lists and archives, docs, man pages, locales.
slim_root() {
  local root=$1
  chroot "$root" apt-get clean
  rm -rf "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
    "$root"/var/log/*.log "$root"/var/cache/debconf/*-old "$root"/tmp/* "$root"/var/tmp/*
  find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name 'locale.alias' -exec rm -rf {} + 2>/dev/null || true
  : >"$root/etc/resolv.conf"
}

import_root() {
  local root=$1 tag=$2; shift 2
  tar -C "$root" --numeric-owner -c . | docker import \
    --change "LABEL numgrad.stand-in.inputs=$HASH" \
    --change "LABEL numgrad.stand-in.suite=$SUITE" \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    "$@" - "$tag" >/dev/null
}

make_root node nodejs npm
chroot "$WORK/node" sh -c 'groupadd --gid 1000 node && useradd --uid 1000 --gid node --shell /bin/bash --create-home node'
node_env=()
if [ -n "$CA_FILE" ]; then
  mkdir -p "$WORK/node$(dirname "$CA_IN_IMAGE")"
  cp "$CA_FILE" "$WORK/node$CA_IN_IMAGE"
  chmod 644 "$WORK/node$CA_IN_IMAGE"
  node_env=(--change "ENV NODE_EXTRA_CA_CERTS=$CA_IN_IMAGE")
fi
node_version=$(chroot "$WORK/node" node --version)
case "$node_version" in v20.*) ;; *) echo "stand-in-images: $SUITE ships Node $node_version, not 20" >&2; exit 1 ;; esac
slim_root "$WORK/node"
import_root "$WORK/node" "$NODE_TAG" "${node_env[@]}" --change 'CMD ["node"]'

make_root redis redis-server redis-tools
mkdir -p "$WORK/redis/data"
chroot "$WORK/redis" chown redis:redis /data
slim_root "$WORK/redis"
import_root "$WORK/redis" "$REDIS_TAG" --change 'VOLUME /data' --change 'WORKDIR /data' --change 'USER redis' \
  --change 'EXPOSE 6379' --change 'CMD ["redis-server"]'

echo "stand-in-images: built $NODE_TAG (node $node_version) and $REDIS_TAG (inputs $HASH) in $(( $(date +%s) - started )) s"
for t in "$NODE_TAG" "$REDIS_TAG"; do
  echo "stand-in-images: $t $(docker image inspect --format '{{.Size}}' "$t" | awk '{printf "%.0f MB", $1/1e6}')"
done
