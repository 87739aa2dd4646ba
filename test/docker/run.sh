#!/usr/bin/env bash
# `npm run test:docker`: the compose stack for real. Installs Debian's docker.io, docker-compose and
# debootstrap when missing, starts dockerd when it does not answer (logging to
# test-artifacts/dockerd.log), builds the stand-ins for the public base images
# (test/docker/stand-in-images.sh; reused while unchanged), then runs test/docker/*.docker.test.ts,
# which build the project's image from its Dockerfile and run its docker-compose.yml unchanged.
# Bounded: the whole script is stopped after DOCKER_TEST_TIMEOUT seconds (default 2400).
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p test-artifacts

missing=()
command -v docker >/dev/null || missing+=(docker.io)
command -v dockerd >/dev/null || missing+=(docker.io)
command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1 || missing+=(docker-compose)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v tc >/dev/null || missing+=(iproute2)
command -v nsenter >/dev/null || missing+=(util-linux)
if [ ${#missing[@]} -gt 0 ]; then
  echo "test:docker: installing ${missing[*]} with apt"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  echo "test:docker: dockerd does not answer; starting it (log: test-artifacts/dockerd.log)"
  nohup dockerd >test-artifacts/dockerd.log 2>&1 &
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { tail -20 test-artifacts/dockerd.log >&2; echo "test:docker: dockerd did not start" >&2; exit 1; }
fi

# cgroup v1 gives all of Docker's containers together the CPU weight of one host process
# (/sys/fs/cgroup/cpu/docker, cpu.shares 1024): on a busy CI host the stack then crawls (0.3 steps/s
# at load 25 on 2 cores). The weight of 4 processes (Redis, the workers, the producer) keeps the test
# bounded without favouring it over the host's own work. DOCKER_CPU_SHARES=1024 leaves the default.
shares=/sys/fs/cgroup/cpu/docker/cpu.shares
if [ -w "$shares" ] && [ "$(cat "$shares")" != "${DOCKER_CPU_SHARES:-4096}" ]; then
  echo "test:docker: cgroup v1: Docker's containers get cpu.shares ${DOCKER_CPU_SHARES:-4096} (was $(cat "$shares"))"
  echo "${DOCKER_CPU_SHARES:-4096}" >"$shares"
fi

timeout "${DOCKER_TEST_TIMEOUT:-2400}" bash -c '
  test/docker/stand-in-images.sh
  npm run build --silent
  npx vitest run --config vitest.docker.config.ts
'
