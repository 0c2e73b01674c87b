// Keyset-paginated node stream (stable across batches).
MATCH (n:{{label}})
WHERE n.{{key}} > $after
RETURN n.{{key}} AS id{{props}}
ORDER BY id
LIMIT $limit
