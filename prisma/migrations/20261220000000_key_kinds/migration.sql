-- Two kinds of key (issue 16): the existing key is the secret key, kept as it is, so every key
-- issued before (pk_live_…) keeps working as a secret key; a publishable key is added beside it,
-- issued by the admin (none exists until then: only a key's hash is stored, so none can be made here).
-- Each product gets the secret that signs its conversation tokens: gen_random_uuid() draws from
-- PostgreSQL's strong random source; two of them hashed give 256 bits.

-- AlterTable
ALTER TABLE "Product" ADD COLUMN "publishableKeyPrefix" TEXT,
ADD COLUMN "publishableKeyHash" TEXT,
ADD COLUMN "conversationTokenSecret" TEXT,
ADD COLUMN "publishableSearch" BOOLEAN NOT NULL DEFAULT false;

UPDATE "Product" SET "conversationTokenSecret" = encode(sha256(convert_to(gen_random_uuid()::text || gen_random_uuid()::text, 'UTF8')), 'hex');

ALTER TABLE "Product" ALTER COLUMN "conversationTokenSecret" SET NOT NULL;

-- CreateIndex
CREATE UNIQUE INDEX "Product_publishableKeyHash_key" ON "Product"("publishableKeyHash");
