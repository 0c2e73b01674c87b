// Why was $item recommended to $user? The user's (training) items share a feature (genre, author,
// brand, year, …) with it. One row per shared feature, scored by how informative it is: its IDF
// over the catalogue, log(N / items with the feature) / log(N), in [0, 1], so a rare genre or an
// author beats a genre every other item has. Years are the weakest reason there is (`weak` = 1):
// they come after every other feature, whatever their IDF.
// Neo4j Browser:  :param user => '1'   :param item => '2571'
MATCH (catalogue:Item)
WITH count(catalogue) AS n_items
MATCH (u:User {id: $user})-[:INTERACTED]->(h:Item)-[:HAS_FEATURE]->(f:Feature)<-[:HAS_FEATURE]-(i:Item {id: $item})
WHERE h <> i
WITH n_items, i, f, h
ORDER BY h.id
WITH n_items, i, f, collect(h) AS vias
MATCH (f)<-[:HAS_FEATURE]-(other:Item)
WITH n_items, i, f, vias, count(other) AS items_sharing
RETURN vias[0].id AS via_item, vias[0].title AS via_title, size(vias) AS via_count,
       i.title AS item_title, f.id AS feature, f.kind AS kind, f.value AS value, items_sharing,
       CASE WHEN f.kind = 'year' THEN 1 ELSE 0 END AS weak,
       round(1000.0 * log((1.0 + n_items) / items_sharing) / log(1.0 + n_items)) / 1000.0 AS score
ORDER BY weak, score DESC, via_item
LIMIT 25
