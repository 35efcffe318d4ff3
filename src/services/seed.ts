import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { PrismaClient } from '../infra/db.js';
import { insertMessage } from './messages.js';
import { sha256 } from '../infra/hash.js';
import { findProductByKey, issueProductKey, keyKindOf, newConversationTokenSecret, rotateProductKey } from './products.js';
import type { Store } from './store.js';

export interface DemoSeed {
  productId: string;
  /** The key, when this data dir knows it (it is never stored in the database). */
  key: string | null;
  created: boolean;
}

const SEED_LOCK = 7_270_736_902;
const DEMO_SESSION = 'demo-session';

const knowledge = [
  {
    title: 'Shipping times',
    content: 'Orders ship within 2 business days. Standard delivery takes 3-5 business days; express delivery takes 1-2 business days.',
    tags: ['shipping', 'delivery'],
  },
  {
    title: 'Refund policy',
    content: 'You can return any item within 30 days of delivery for a full refund. Refunds are paid to the original payment method within 5 days.',
    tags: ['refunds', 'returns'],
  },
  {
    title: 'Opening hours',
    content: 'Our support team answers chat messages Monday to Friday, 9:00 to 18:00 CET.',
    tags: ['support'],
  },
  {
    title: 'Changing a password',
    content: 'To change your password, open Settings, choose Security and click "Change password". A confirmation email follows.',
    tags: ['account'],
  },
];

/**
 * On an empty database, creates the demo product with a little knowledge and
 * one conversation. Several nodes starting at once seed it once (advisory lock).
 * The demo key is kept in the data dir so later starts can print it again.
 */
export async function seedDemo(prisma: PrismaClient, dataDir: string): Promise<DemoSeed | null> {
  const keyFile = join(dataDir, 'demo-key');
  const seeded = await prisma.$transaction(
    async (tx) => {
      await tx.$executeRawUnsafe(`SELECT pg_advisory_xact_lock(${SEED_LOCK})`);
      if ((await tx.product.count()) > 0) return null;
      const issued = issueProductKey();
      const product = await tx.product.create({
        data: {
          name: 'Demo shop assistant',
          keyPrefix: issued.keyPrefix,
          keyHash: issued.keyHash,
          conversationTokenSecret: newConversationTokenSecret(),
          metadata: { demo: true },
        },
      });
      await tx.knowledgeEntry.createMany({ data: knowledge.map((k) => ({ ...k, productId: product.id })) });
      const conversation = await tx.conversation.create({
        data: { productId: product.id, sessionId: DEMO_SESSION, title: 'Where is my order?' },
      });
      const db = tx as unknown as PrismaClient;
      await insertMessage(db, product.id, conversation.id, { role: 'USER', content: 'How long does shipping take?' });
      await insertMessage(db, product.id, conversation.id, {
        role: 'ASSISTANT',
        content: 'Orders ship within 2 business days; standard delivery then takes 3-5 business days.',
        model: 'demo',
        latencyMs: 0,
        cached: false,
      });
      // Written before the commit: a crash after it must not leave a demo product
      // whose key nobody knows. If the commit fails instead, the next start finds
      // an empty database, seeds again and overwrites this file.
      mkdirSync(dataDir, { recursive: true });
      writeFileSync(keyFile, `${issued.key}\n`, { mode: 0o600 });
      return { productId: product.id, key: issued.key };
    },
    { maxWait: 60_000, timeout: 60_000 },
  ); // not Prisma's 5 s default: a busy 2-core machine or a queue of nodes

  if (seeded) return { ...seeded, created: true };
  if (!existsSync(keyFile)) return null;
  const key = readFileSync(keyFile, 'utf8').trim();
  const product = await findProductByKey(prisma, key);
  return product ? { productId: product.id, key, created: false } : null;
}

/** The seeded demo conversation's id (GraphiQL's live-events example follows it); null when it is gone. */
export async function findDemoConversation(prisma: PrismaClient, productId: string): Promise<string | null> {
  const conversation = await prisma.conversation.findFirst({
    where: { productId, sessionId: DEMO_SESSION },
    orderBy: { createdAt: 'asc' },
    select: { id: true },
  });
  return conversation?.id ?? null;
}

/**
 * The demo product's publishable key, for the development-only /demo page.
 *
 * Keys are stored hashed, so the page cannot read one from the database: the
 * key is issued here the first time it is needed (for the demo product only)
 * and kept in the data dir, as the demo's secret key is. Keeping it, rather
 * than issuing one at each start and holding it in memory, is what lets a
 * visitor's conversation survive a restart: issuing a publishable key replaces
 * the product's conversation-token secret, which would end every conversation
 * token the widget holds in localStorage. A publishable key is meant to be
 * seen (it is in every page that embeds the widget), so the file adds no
 * exposure; it is written owner-only like its neighbours all the same. A file
 * that no longer matches (the key was rotated) is replaced by a new key.
 */
export async function demoPublishableKey(store: Store, dataDir: string, productId: string): Promise<string> {
  const keyFile = join(dataDir, 'demo-publishable-key');
  if (existsSync(keyFile)) {
    const key = readFileSync(keyFile, 'utf8').trim();
    const product = await findProductByKey(store.prisma, key);
    if (product?.id === productId && keyKindOf(product, sha256(key)) === 'PUBLISHABLE') return key;
  }
  const { key } = await rotateProductKey(store, productId, 'PUBLISHABLE');
  mkdirSync(dataDir, { recursive: true });
  writeFileSync(keyFile, `${key}\n`, { mode: 0o600 });
  return key;
}
