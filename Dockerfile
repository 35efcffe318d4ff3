# Parley as one stateless node: PostgreSQL and Redis come from the environment
# (see docker-compose.yml). Built from the repository root: `docker build -t parley .`
#
# Two stages: the build stage has every dependency (Prisma's generator, TypeScript,
# esbuild) and compiles to dist/ (the server, and the chat widget under dist/widget);
# the runtime stage has the production dependencies, dist/ and the migrations only,
# and runs `node dist/main.js` as the process a supervisor signals, under tini as
# PID 1 (signals forwarded, zombies reaped).
ARG NODE_IMAGE=node:24-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
# Dependencies first, so a source change does not reinstall them. `npm ci` runs the
# postinstall step (`prisma generate`, offline), which needs the Prisma schema.
COPY package.json package-lock.json prisma.config.ts ./
COPY prisma ./prisma
RUN npm ci
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY widget ./widget
RUN npm run build

FROM ${NODE_IMAGE} AS runtime
RUN apt-get update && apt-get install -y --no-install-recommends tini && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=4000 \
    PARLEY_DATA_DIR=/app/.parley
COPY package.json package-lock.json ./
# Production dependencies only; the generated Prisma client is compiled into dist/, so no generate step.
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY prisma/migrations ./prisma/migrations
RUN mkdir -p "$PARLEY_DATA_DIR" && chown -R node:node "$PARLEY_DATA_DIR"

USER node
EXPOSE 4000
# /readyz: the database answers and every migration is applied (503 while draining).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:' + (process.env.PORT || 4000) + '/readyz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"
ENTRYPOINT ["/usr/bin/tini", "--"]
# SIGTERM reaches Parley itself, which drains for PARLEY_SHUTDOWN_MS before it exits.
CMD ["node", "dist/main.js"]
