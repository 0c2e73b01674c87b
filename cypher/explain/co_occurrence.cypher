// Why was $item recommended to $user? In training sessions, people went from one of the user's
// items straight to it (or the metadata lists it as bought/viewed together). Score: the count
// shrunk towards 0, weight / (weight + 2), in [0, 1).
// Neo4j Browser:  :param user => '1'   :param item => '2571'
MATCH (u:User {id: $user})-[:INTERACTED]->(h:Item)-[c:CO_OCCURS]->(i:Item {id: $item})
WHERE h <> i
RETURN h.id AS via_item, h.title AS via_title, i.title AS item_title, c.weight AS weight,
       round(1000.0 * c.weight / (c.weight + 2.0)) / 1000.0 AS score
ORDER BY score DESC, via_item
LIMIT 25
