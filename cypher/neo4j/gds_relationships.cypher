// Stream the relationships of one type (GDS >= 2.5: gds.graph.relationships.stream).
CALL gds.graph.relationships.stream($graph_name, [$rel_type])
YIELD sourceNodeId, targetNodeId
RETURN gds.util.asNode(sourceNodeId).{{src_key}} AS src, gds.util.asNode(targetNodeId).{{dst_key}} AS dst
