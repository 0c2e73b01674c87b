// Internal node ids (what GDS projections stream) joined to kgrec keys.
MATCH (n:{{label}})
RETURN id(n) AS nid, n.{{key}} AS id
ORDER BY id
