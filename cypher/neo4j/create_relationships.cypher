// Batched relationship creation for a type the graph does not hold yet, from distinct (src, dst)
// rows (Neo4j twin of the shared file: static keys in {{set_clause}}, so no Eager step; see
// upsert_relationships.cypher).
UNWIND $rows AS row
MATCH (a:{{src_label}} {{{src_key}}: row.src})
MATCH (b:{{dst_label}} {{{dst_key}}: row.dst})
CREATE (a)-[r:{{rel_type}}]->(b)
{{set_clause}}
