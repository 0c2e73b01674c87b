// Neo4j: batched (auto-commit) delete of the relationships of one type with a property value.
MATCH ()-[r:{{rel_type}}]->()
WHERE r.{{prop}} = $value
CALL { WITH r DELETE r } IN TRANSACTIONS OF 10000 ROWS
