// FalkorDB stores vectors as vecf32 so its vector index can use them.
UNWIND $rows AS row
MATCH (n:{{label}} {{{key}}: row.id})
SET n.{{prop}} = vecf32(row.v)
SET n += $extra
