# Parley as one stateless node: PostgreSQL and Redis come from the environment
# (see docker-compose.yml). Built from the repository root: `docker build -t parley .`
FROM node:20-bookworm-slim

WORKDIR /app
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=4000 \
    PARLEY_DATA_DIR=/app/.parley

# Dependencies first, so a source change does not reinstall them. `npm ci` runs the
# postinstall step (`prisma generate`, offline), which needs the Prisma schema.
COPY package.json package-lock.json prisma.config.ts ./
COPY prisma ./prisma
RUN npm ci && npm cache clean --force

COPY tsconfig.json ./
COPY src ./src
COPY scripts ./scripts
RUN mkdir -p "$PARLEY_DATA_DIR" && chown -R node:node "$PARLEY_DATA_DIR"

USER node
EXPOSE 4000
# /readyz: the database answers and every migration is applied (503 while draining).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:' + (process.env.PORT || 4000) + '/readyz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"
# npm passes SIGTERM on to Parley, which drains for PARLEY_SHUTDOWN_MS before it exits.
CMD ["npm", "start"]
