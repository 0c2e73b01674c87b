// Relationships leaving a batch of source nodes.
UNWIND $ids AS sid
MATCH (a:{{src_label}} {{{src_key}}: sid})-[r:{{rel_type}}]->(b:{{dst_label}})
RETURN a.{{src_key}} AS src, b.{{dst_key}} AS dst{{props}}
