// Stream relationship properties of one type, one row per relationship and property.
CALL gds.graph.relationshipProperties.stream($graph_name, $props, [$rel_type])
YIELD sourceNodeId, targetNodeId, relationshipProperty, propertyValue
RETURN gds.util.asNode(sourceNodeId).{{src_key}} AS src, gds.util.asNode(targetNodeId).{{dst_key}} AS dst,
       relationshipProperty AS prop, propertyValue AS value
