// Stream numeric (and numeric array) node properties of one label from the in-memory graph.
CALL gds.graph.nodeProperties.stream($graph_name, $props, [$label])
YIELD nodeId, nodeProperty, propertyValue
RETURN gds.util.asNode(nodeId).{{key}} AS id, nodeProperty AS prop, propertyValue AS value
