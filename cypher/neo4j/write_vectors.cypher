// Neo4j 5: db.create.setNodeVectorProperty stores a float32 vector for the vector index.
// {{set_clause}}: static assignments of $extra's keys (`SET n.persona_version = $extra.persona_version`),
// since `SET n += $extra` plans an Eager step.
UNWIND $rows AS row
MATCH (n:{{label}} {{{key}}: row.id})
CALL db.create.setNodeVectorProperty(n, '{{prop}}', row.v)
{{set_clause}}
