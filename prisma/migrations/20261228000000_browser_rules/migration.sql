-- Browser rules (issue 16): the web pages whose browsers may use a product's keys, and whether its
-- secret key may be used from one. Existing products get an empty list (the publishable key keeps
-- working from any origin, as before) and a secret key that a web page cannot use: secret keys
-- were never meant for pages, and servers send no Origin, so they are unaffected.

-- AlterTable
ALTER TABLE "Product" ADD COLUMN "allowedOrigins" TEXT[] DEFAULT ARRAY[]::TEXT[],
ADD COLUMN "secretKeyInBrowser" BOOLEAN NOT NULL DEFAULT false;
