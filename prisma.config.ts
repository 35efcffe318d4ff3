import { defineConfig } from 'prisma/config';

// Used by the Prisma CLI only (generate). Parley applies migrations itself:
// see src/infra/migrate.ts.
export default defineConfig({
  schema: 'prisma/schema.prisma',
  migrations: { path: 'prisma/migrations' },
});
