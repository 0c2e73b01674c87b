// Batched relationship creation between existing nodes, for a type the graph does not hold yet
// and rows that are distinct (src, dst) pairs (GraphStore.upsert_relationships(fresh=True)):
// CREATE skips MERGE's look for an existing relationship on every endpoint.
UNWIND $rows AS row
MATCH (a:{{src_label}} {{{src_key}}: row.src})
MATCH (b:{{dst_label}} {{{dst_key}}: row.dst})
CREATE (a)-[r:{{rel_type}}]->(b)
SET r += row.props
