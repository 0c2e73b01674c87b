// Idempotent batched node upsert (Neo4j twin of the shared file): {{set_clause}} holds static
// assignments for the rows' property keys (`SET n.title = row.props.title, ...`, or nothing), so
// the plan has no Eager step, which `SET n += row.props` gets. {{label}} and {{key}} come from
// kg/schema.py allow-lists.
UNWIND $rows AS row
MERGE (n:{{label}} {{{key}}: row.key})
{{set_clause}}
