// FalkorDB stores vectors as vecf32 so its vector index can use them.
// FalkorDB 4.16 may keep an existing vecf32 value when it is SET again, so clear it first.
UNWIND $rows AS row
MATCH (n:{{label}} {{{key}}: row.id})
SET n.{{prop}} = NULL
WITH n, row
SET n.{{prop}} = vecf32(row.v)
SET n += $extra
