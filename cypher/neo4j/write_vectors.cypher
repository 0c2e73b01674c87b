// Neo4j 5: db.create.setNodeVectorProperty stores a float32 vector for the vector index.
UNWIND $rows AS row
MATCH (n:{{label}} {{{key}}: row.id})
CALL db.create.setNodeVectorProperty(n, '{{prop}}', row.v)
SET n += $extra
