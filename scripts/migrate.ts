// `npm run db:migrate`: applies prisma/migrations to DATABASE_URL (or the embedded database).
import { loadConfig } from '../src/config.js';
import { databaseOptions, openDatabase } from '../src/infra/db.js';
import { migrate } from '../src/infra/migrate.js';

const config = loadConfig();
const db = await openDatabase(databaseOptions(config));
try {
  const result = await migrate(db.prisma);
  process.stdout.write(
    result.applied.length
      ? `applied ${result.applied.join(', ')} to ${db.description}\n`
      : `${db.description}: all ${result.alreadyApplied} migrations already applied\n`,
  );
} finally {
  await db.close();
}
