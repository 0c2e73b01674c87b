// Why was $item recommended to $user? One of the user's (training) items is linked to DBpedia,
// and its resource shares a neighbour entity (director, actor, author, genre, publisher, …) with
// the recommended item's resource. Rarer shared entities score higher.
// Neo4j Browser:  :param user => '1'   :param item => '2571'
MATCH (u:User {id: $user})-[:INTERACTED]->(h:Item)-[:SAME_AS]->(eh:Entity)-[r1]->(x:Entity)<-[r2]-(ei:Entity)<-[:SAME_AS]-(i:Item {id: $item})
WHERE h <> i AND type(r1) = type(r2)
WITH h, i, eh, ei, x, type(r1) AS relation
MATCH (x)<-[rx]-(:Entity)
WITH h, i, eh, ei, x, relation, count(rx) AS degree
RETURN h.id AS via_item, h.title AS via_title, i.title AS item_title, relation,
       x.iri AS entity, x.label AS entity_label, eh.iri AS via_entity, ei.iri AS item_entity,
       1.0 / log(2.0 + degree) AS score
ORDER BY score DESC, via_item
LIMIT 25
