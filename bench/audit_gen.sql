-- Fills audit_log with :n records (default 1,000,000) spread over the 30 days before now, for
-- bench/audit_query.sh. The mix is shaped like a busy proxy: mostly transaction traffic, a few
-- instances, a few dozen credentials, mostly 2xx with some 4xx/5xx, and CLI admin changes.
-- Run with the sqlite3 CLI after `blnkproxy db migrate` (N is substituted by the script).
PRAGMA journal_mode=WAL;
PRAGMA synchronous=OFF;
BEGIN;
WITH RECURSIVE
  n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < @N@),
  r AS MATERIALIZED (
    SELECT i,
           abs(random()) % 100 AS rc,   -- category
           abs(random()) % 100 AS rs,   -- status
           abs(random()) % 5 AS ri,     -- instance
           abs(random()) % 40 AS ra,    -- actor
           abs(random()) % 3 AS rm      -- verb
    FROM n),
  c AS MATERIALIZED (
    SELECT i, rs, ri, ra, rm,
           CASE WHEN rc < 50 THEN 'transactions' WHEN rc < 70 THEN 'balances' WHEN rc < 78 THEN 'ledgers'
                WHEN rc < 86 THEN 'identities' WHEN rc < 91 THEN 'reconciliation' WHEN rc < 96 THEN 'metadata'
                ELSE 'admin' END AS cat
    FROM r)
INSERT INTO audit_log (time_us, request_id, actor_type, actor_id, actor_name, instance_id, method, route, path,
                       action, category, core_status, status, latency_us, client_addr, resource_id, error)
SELECT
  (CAST(strftime('%s', 'now') AS INTEGER) - 30 * 86400) * 1000000 + i * (30 * 86400 * 1000000 / @N@),
  CASE WHEN cat = 'admin' THEN NULL ELSE printf('req_%08d', i) END,
  CASE WHEN cat = 'admin' THEN 'cli' WHEN ra < 30 THEN 'api_key' ELSE 'oauth_client' END,
  CASE WHEN cat = 'admin' THEN 'ops' || (ra % 3) WHEN ra < 30 THEN 'key_' || ra ELSE 'client_' || ra END,
  CASE WHEN cat = 'admin' THEN NULL ELSE 'credential ' || ra END,
  'instance_' || ri,
  CASE WHEN cat = 'admin' THEN NULL WHEN rm = 0 THEN 'POST' ELSE 'GET' END,
  CASE WHEN cat = 'admin' THEN NULL ELSE '/' || cat || (CASE WHEN rm = 2 THEN '/:id' ELSE '' END) END,
  CASE WHEN cat = 'admin' THEN NULL ELSE '/' || cat || (CASE WHEN rm = 2 THEN '/id_' || i ELSE '' END) END,
  CASE WHEN cat = 'admin' THEN (CASE rm WHEN 0 THEN 'Key created' WHEN 1 THEN 'Key revoked' ELSE 'Instance updated' END)
       WHEN rm <> 0 THEN NULL  -- reads carry no action label (DESIGN §3)
       WHEN cat = 'transactions' THEN 'Transaction created' WHEN cat = 'balances' THEN 'Balance created'
       WHEN cat = 'ledgers' THEN 'Ledger created' WHEN cat = 'identities' THEN 'Identity created'
       WHEN cat = 'reconciliation' THEN 'Reconciliation started' ELSE 'Metadata updated' END,
  cat,
  CASE WHEN cat = 'admin' OR (rs >= 90 AND rs < 95) THEN 0 WHEN rs < 90 THEN (CASE WHEN rm = 0 THEN 201 ELSE 200 END)
       WHEN rs < 98 THEN 404 ELSE 502 END,
  CASE WHEN cat = 'admin' THEN 0 WHEN rs < 90 THEN (CASE WHEN rm = 0 THEN 201 ELSE 200 END)
       WHEN rs < 93 THEN 401 WHEN rs < 95 THEN 403 WHEN rs < 98 THEN 404 ELSE 502 END,
  CASE WHEN cat = 'admin' THEN 0 ELSE 800 + abs(random()) % 40000 END,
  CASE WHEN cat = 'admin' THEN NULL ELSE '10.0.' || ri || '.' || ra END,
  CASE WHEN cat = 'admin' THEN 'key_' || ra WHEN rm = 0 AND rs < 90 THEN substr(cat, 1, 3) || '_' || i ELSE NULL END,
  CASE WHEN cat = 'admin' THEN NULL WHEN rs >= 90 AND rs < 93 THEN 'AUTH_INVALID_API_KEY'
       WHEN rs >= 93 AND rs < 95 THEN 'AUTH_INSUFFICIENT_SCOPE' ELSE NULL END
FROM c;
COMMIT;
