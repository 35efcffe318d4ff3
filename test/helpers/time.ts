export { within } from '../../scripts/servers.js';
