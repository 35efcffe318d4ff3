// Throwaway PostgreSQL/Redis servers live in scripts/ now: `npm run bench` starts them too.
export * from '../../scripts/servers.js';
