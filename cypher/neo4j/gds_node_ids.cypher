// The GDS node ids (internal ids) of the given keys of one label: the start nodes of a sample.
UNWIND $keys AS k
MATCH (n:{{label}} {{{key}}: k})
RETURN id(n) AS nodeId
