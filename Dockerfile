# syntax=docker/dockerfile:1
# One multi-stage build for every Hatch service. Pick the service with a build argument:
#   docker build --build-arg SERVICE=gateway -t hatch/gateway .
# SERVICE is one of: gateway, sms-sender, email-sender, realtime-bridge, provider-emulator.
# The image holds only the service's production dependencies (`pnpm deploy --prod`), the SQL
# migrations (/app/sql; `node node_modules/@hatch/db/dist/migrate-cli.js` applies them) and, for
# the gateway, the built web UI. It runs as the unprivileged `node` user; no secret is baked in
# (settings come from the environment, secrets from *_FILE mounts).

ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS build
ENV CI=true PNPM_HOME=/pnpm PATH=/pnpm:$PATH
RUN npm i -g pnpm@10.34.9
WORKDIR /src
# Manifests first: the dependency layer is cached until a package.json or the lockfile changes.
COPY pnpm-lock.yaml pnpm-workspace.yaml package.json ./
COPY packages/contracts/package.json packages/contracts/
COPY packages/config/package.json packages/config/
COPY packages/log/package.json packages/log/
COPY packages/db/package.json packages/db/
COPY packages/async/package.json packages/async/
COPY packages/bus/package.json packages/bus/
COPY packages/jobs/package.json packages/jobs/
COPY packages/service/package.json packages/service/
COPY packages/testing/package.json packages/testing/
COPY services/gateway/package.json services/gateway/
COPY services/sms-sender/package.json services/sms-sender/
COPY services/email-sender/package.json services/email-sender/
COPY services/realtime-bridge/package.json services/realtime-bridge/
COPY services/provider-emulator/package.json services/provider-emulator/
COPY web/package.json web/
RUN pnpm install --frozen-lockfile
COPY . .
RUN pnpm build
ARG SERVICE=gateway
RUN pnpm --filter "@hatch/${SERVICE}" deploy --prod --legacy /out \
 && cp -r sql /out/sql \
 && if [ "$SERVICE" = gateway ] && [ -d web/dist ]; then cp -r web/dist /out/web; fi

FROM ${NODE_IMAGE} AS runtime
ARG SERVICE=gateway
ENV NODE_ENV=production HATCH_SERVICE=${SERVICE} HATCH_MIGRATIONS_DIR=/app/sql HATCH_WEB_DIR=/app/web
WORKDIR /app
COPY --from=build --chown=root:root /out /app
USER node
# /healthz answers on PORT (gateway), EMULATOR_PORT (emulator) or HEALTH_PORT (workers).
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "const e=process.env;const p=e.PORT||e.EMULATOR_PORT||e.HEALTH_PORT||({'gateway':5002,'provider-emulator':5090,'sms-sender':9101,'email-sender':9102,'realtime-bridge':9103})[e.HATCH_SERVICE];fetch('http://127.0.0.1:'+p+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
STOPSIGNAL SIGTERM
CMD ["node", "dist/main.js"]
