// Neo4j: delete in batches (CALL … IN TRANSACTIONS runs only in an auto-commit transaction;
// the adapter routes it there), so a large graph never needs one huge transaction.
MATCH (n)
CALL { WITH n DETACH DELETE n } IN TRANSACTIONS OF 10000 ROWS
