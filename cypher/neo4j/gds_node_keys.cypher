// GDS node ids (the internal ids of a native projection) and kgrec keys of one label, to join
// the projection's streams back to keys.
MATCH (n:{{label}})
RETURN id(n) AS nodeId, n.{{key}} AS id
