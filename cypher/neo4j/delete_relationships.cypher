// Neo4j: batched (auto-commit) delete of one relationship type.
MATCH ()-[r:{{rel_type}}]->()
CALL { WITH r DELETE r } IN TRANSACTIONS OF 10000 ROWS
