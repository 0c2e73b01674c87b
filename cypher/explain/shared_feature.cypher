// Why was $item recommended to $user? One of the user's (training) items shares a feature
// (genre, author, brand, year, …) with it. Rarer features score higher.
// Neo4j Browser:  :param user => '1'   :param item => '2571'
MATCH (u:User {id: $user})-[:INTERACTED]->(h:Item)-[:HAS_FEATURE]->(f:Feature)<-[:HAS_FEATURE]-(i:Item {id: $item})
WHERE h <> i
WITH h, i, f
MATCH (f)<-[:HAS_FEATURE]-(other:Item)
WITH h, i, f, count(other) AS degree
RETURN h.id AS via_item, h.title AS via_title, i.title AS item_title,
       f.id AS feature, f.kind AS kind, f.value AS value,
       0.5 / log(2.0 + degree) AS score
ORDER BY score DESC, via_item
LIMIT 25
