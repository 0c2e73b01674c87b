// FalkorDB returns cosine DISTANCE (0 = identical); convert to similarity = 1 - distance.
CALL db.idx.vector.queryNodes('{{label}}', '{{prop}}', $k, vecf32($vector)) YIELD node, score
RETURN node.{{key}} AS id, 1.0 - score AS score
ORDER BY score DESC
