// In-memory graphs kgrec created (for cleaning up after a killed run).
CALL gds.graph.list() YIELD graphName, creationTime
WHERE graphName STARTS WITH $prefix
RETURN graphName, toString(creationTime) AS created
