import { builder } from '../builder.js';
import './product.js';
import './knowledge.js';
import './conversation.js';
import './message.js';
import './feedback.js';
import './events.js';
import './cache.js';

export const schema = builder.toSchema({ sortSchema: true });
