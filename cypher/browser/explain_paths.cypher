// Why was $item recommended to $user, drawn as the actual paths behind each reason of
// `kgrec explain`. What an analyst sees (with kgrec.grass): the user (blue) on one side, the item
// (orange) on the other, and between them the three most informative shared DBpedia entities
// (green; fewest catalogue items share them), the three rarest shared features other than years
// (light blue), up to five persona peers who chose the item through the user's persona group
// (purple), and the items people went from straight to this one (CO_OCCURS weight on the edge).
// Neo4j Browser:  :param user => '1'   :param item => '2571'
MATCH path = (u:User {id: $user})-[:INTERACTED]->(h:Item)-[:SAME_AS]->(:Entity)-[r1]->(x:Entity)<-[r2]-(:Entity)<-[:SAME_AS]-(i:Item {id: $item})
WHERE h <> i AND type(r1) = type(r2)
WITH path, x, h
MATCH (x)<-[]-(:Entity)<-[:SAME_AS]-(other:Item)
WITH path, x, h, count(DISTINCT other) AS items_sharing
ORDER BY items_sharing, x.iri, h.id
LIMIT 3
RETURN path
UNION
MATCH path = (u:User {id: $user})-[:INTERACTED]->(h:Item)-[:HAS_FEATURE]->(f:Feature)<-[:HAS_FEATURE]-(i:Item {id: $item})
WHERE h <> i AND f.kind <> 'year'
WITH path, f, h
MATCH (f)<-[:HAS_FEATURE]-(other:Item)
WITH path, f, h, count(other) AS items_sharing
ORDER BY items_sharing, f.id, h.id
LIMIT 3
RETURN path
UNION
MATCH path = (u:User {id: $user})-[:HAS_PERSONA]->(:Persona)<-[:HAS_PERSONA]-(peer:User)-[:INTERACTED]->(i:Item {id: $item})
WHERE peer <> u
WITH path, peer
ORDER BY peer.id
LIMIT 5
RETURN path
UNION
MATCH path = (u:User {id: $user})-[:INTERACTED]->(h:Item)-[c:CO_OCCURS]->(i:Item {id: $item})
WHERE h <> i
WITH path, c, h
ORDER BY c.weight DESC, h.id
LIMIT 3
RETURN path
