// Why was $item recommended to $user? The user's (training) items are linked to DBpedia, and
// their resources share a neighbour entity (director, actor, author, genre, publisher, …) with
// the recommended item's resource. One row per shared entity and relation, scored by IDF over the
// catalogue: log(N / items whose resource has that neighbour) / log(N), in [0, 1], so a director
// of three films beats a country of three hundred.
// Neo4j Browser:  :param user => '1'   :param item => '2571'
MATCH (catalogue:Item)
WITH count(catalogue) AS n_items
MATCH (u:User {id: $user})-[:INTERACTED]->(h:Item)-[:SAME_AS]->(eh:Entity)-[r1]->(x:Entity)<-[r2]-(ei:Entity)<-[:SAME_AS]-(i:Item {id: $item})
WHERE h <> i AND type(r1) = type(r2)
WITH n_items, i, ei, x, type(r1) AS relation, h, eh
ORDER BY h.id
WITH n_items, i, ei, x, relation, collect(h) AS vias, collect(eh) AS via_entities
MATCH (x)<-[]-(:Entity)<-[:SAME_AS]-(other:Item)
WITH n_items, i, ei, x, relation, vias, via_entities, count(DISTINCT other) AS items_sharing
RETURN vias[0].id AS via_item, vias[0].title AS via_title, size(vias) AS via_count,
       i.title AS item_title, relation, x.iri AS entity, x.label AS entity_label,
       via_entities[0].iri AS via_entity, ei.iri AS item_entity, items_sharing,
       round(1000.0 * log((1.0 + n_items) / items_sharing) / log(1.0 + n_items)) / 1000.0 AS score
ORDER BY score DESC, via_item
LIMIT 25
