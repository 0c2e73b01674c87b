// Native GDS projection of the typed training subgraph (labels/types/properties as parameters).
CALL gds.graph.project($graph_name, $node_spec, $rel_spec)
YIELD graphName, nodeCount, relationshipCount
RETURN graphName, nodeCount, relationshipCount
