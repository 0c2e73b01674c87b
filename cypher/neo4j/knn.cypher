// Neo4j returns a similarity in [0, 1] for cosine ((1 + cos) / 2); convert back to cosine.
CALL db.index.vector.queryNodes($index_name, $k, $vector) YIELD node, score
RETURN node.{{key}} AS id, 2.0 * score - 1.0 AS score
ORDER BY score DESC
