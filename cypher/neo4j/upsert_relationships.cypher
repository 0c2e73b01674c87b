// Idempotent batched relationship upsert between existing nodes (Neo4j twin of the shared file).
// The store runs it per group of rows with the same property keys and fills {{set_clause}} with
// static assignments (`SET r.rating = row.props.rating, ...`, or nothing): `SET r += row.props`
// makes the planner add an Eager step (a dynamic map might write what the MATCHes read), which
// materialises the whole batch before writing; static keys plan without it (a test EXPLAINs this).
UNWIND $rows AS row
MATCH (a:{{src_label}} {{{src_key}}: row.src})
MATCH (b:{{dst_label}} {{{dst_key}}: row.dst})
MERGE (a)-[r:{{rel_type}}]->(b)
{{set_clause}}
