// Before re-linking: drop an item's SAME_AS edges that point elsewhere than its new link.
UNWIND $rows AS row
MATCH (i:Item {id: row.item})-[r:SAME_AS]->(e:Entity)
WHERE e.iri <> row.iri
DELETE r
