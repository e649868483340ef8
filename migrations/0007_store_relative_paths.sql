-- A version's path is its folder's name inside the model store, resolved by each replica
-- against its own --store. Rows written before recorded the registering server's own path
-- (absolute, or relative to its working folder), which other replicas cannot use.
UPDATE model_versions SET path = regexp_replace(rtrim(path, '/'), '^.*/', '')
WHERE path LIKE '%/%';
