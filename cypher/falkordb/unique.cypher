// FalkorDB: a range index here; the adapter then adds a UNIQUE constraint with GRAPH.CONSTRAINT.
CREATE INDEX FOR (n:{{label}}) ON (n.{{key}})
