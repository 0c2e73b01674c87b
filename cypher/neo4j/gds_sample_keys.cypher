// The labels and kgrec keys of just the node ids a sampled subgraph holds ($key_of: label → key
// property, from the allow-list), so that the client never reads the whole graph's keys.
UNWIND $ids AS nid
WITH nid, gds.util.asNode(nid) AS n
RETURN nid AS nodeId, labels(n) AS labels, n[$key_of[labels(n)[0]]] AS id
