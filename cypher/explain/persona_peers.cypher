// Why was $item recommended to $user? Users of the same persona group interacted with it.
// Neo4j Browser:  :param user => '1'   :param item => '2571'
MATCH (u:User {id: $user})-[:HAS_PERSONA]->(p:Persona)<-[:HAS_PERSONA]-(peer:User)-[:INTERACTED]->(i:Item {id: $item})
WHERE peer <> u
WITH p, i, count(DISTINCT peer) AS peers, collect(DISTINCT peer.id)[0..5] AS example_peers
RETURN p.id AS persona, p.label AS persona_label, p.size AS persona_size, i.title AS item_title,
       peers, example_peers, toFloat(peers) / p.size AS score
ORDER BY score DESC
