-- A change to an application in the revocation log (client_id: its record, as every
-- instance caches it): a rotated secret, a narrowed redirect-URI list or a removal
-- reaches every instance within the cache's lease.
ALTER TABLE revocations ADD COLUMN client_id TEXT;
