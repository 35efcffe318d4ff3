-- Assistant replies: which engine wrote each one, and provider failures per product and model.

-- AlterTable
ALTER TABLE "Message" ADD COLUMN "engine" TEXT;

-- CreateTable
CREATE TABLE "ProviderStat" (
    "productId" UUID NOT NULL,
    "engine" TEXT NOT NULL,
    "model" TEXT NOT NULL,
    "errors" INTEGER NOT NULL DEFAULT 0,
    "retries" INTEGER NOT NULL DEFAULT 0,
    "fallbacks" INTEGER NOT NULL DEFAULT 0,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "ProviderStat_pkey" PRIMARY KEY ("productId","engine","model")
);

-- AddForeignKey
ALTER TABLE "ProviderStat" ADD CONSTRAINT "ProviderStat_productId_fkey" FOREIGN KEY ("productId") REFERENCES "Product"("id") ON DELETE CASCADE ON UPDATE CASCADE;
