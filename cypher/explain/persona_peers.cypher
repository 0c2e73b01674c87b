// Why was $item recommended to $user? Users of the same persona group interacted with it more
// often than users at large. Score: the item's share among the group's other members minus its
// share among all users (the "added value" of the group, in [-1, 1]); an item everyone has scores
// near 0 however many peers chose it, and a group that chose it no more often than users at large
// (score <= 0) is no reason at all, so it is not returned.
// Neo4j Browser:  :param user => '1'   :param item => '2571'
MATCH (everyone:User)
WITH count(everyone) AS n_users
MATCH (i:Item {id: $item})<-[:INTERACTED]-(fan:User)
WITH n_users, i, count(DISTINCT fan) AS fans
MATCH (u:User {id: $user})-[:HAS_PERSONA]->(p:Persona)<-[:HAS_PERSONA]-(peer:User)-[:INTERACTED]->(i)
WHERE peer <> u
WITH n_users, fans, p, i, count(DISTINCT peer) AS peers, collect(DISTINCT peer.id)[0..5] AS example_peers
WITH n_users, fans, p, i, peers, example_peers,
     round(1000.0 * (toFloat(peers) / p.size - toFloat(fans) / n_users)) / 1000.0 AS score
WHERE score > 0
RETURN p.id AS persona, p.label AS persona_label, p.size AS persona_size, i.title AS item_title,
       peers, example_peers,
       round(1000.0 * peers / p.size) / 10.0 AS group_pct,
       round(1000.0 * fans / n_users) / 10.0 AS overall_pct,
       score
ORDER BY score DESC
