// Idempotent batched node upsert. {{label}} and {{key}} come from kg/schema.py allow-lists.
UNWIND $rows AS row
MERGE (n:{{label}} {{{key}}: row.key})
SET n += row.props
